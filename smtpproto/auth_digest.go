package smtpproto

// DIGEST-MD5 (RFC 2831), authentication only (qop=auth): no integrity or
// confidentiality layer is ever negotiated, and no authzid is sent, as in
// JavaMail's built-in client (docs/javamail.md "Authentication").

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

type digestMD5Mech struct {
	user, password string
	realm          string // sasl.realm; "" = from the challenge, else host
	service, host  string // digest-uri = service "/" host (RFC 2831 §2.1.2.1)
	cnonce         string // "" = 32 random bytes in base64; tests inject one

	step    int
	rspauth string // expected rspauth, computed with the response
}

func (m *digestMD5Mech) Name() string { return mechDigestMD5 }

// Start returns nil: DIGEST-MD5 has no initial response (RFC 2831 §2.1).
func (m *digestMD5Mech) Start() ([]byte, error) { return nil, nil }

func (m *digestMD5Mech) Next(challenge []byte) ([]byte, error) {
	m.step++
	switch m.step {
	case 1:
		return m.respond(challenge)
	case 2:
		return m.checkRspauth(challenge)
	default:
		return nil, fmt.Errorf("DIGEST-MD5: challenge after rspauth: %w", errUnexpectedChallenge)
	}
}

// respond builds the digest-response of RFC 2831 §2.1.2 to the first
// challenge.
func (m *digestMD5Mech) respond(challenge []byte) ([]byte, error) {
	c, err := parseDigestChallenge(challenge)
	if err != nil {
		return nil, fmt.Errorf("DIGEST-MD5: %w", err)
	}
	nonce := c["nonce"]
	if nonce == "" {
		return nil, errors.New("DIGEST-MD5: server challenge has no nonce (RFC 2831 §2.1.1 requires one)")
	}
	if qop, ok := c["qop"]; ok && !listContains(qop, "auth") {
		return nil, fmt.Errorf("DIGEST-MD5: server offers qop %q but mailq supports only \"auth\"", qop)
	}
	realm := m.realm
	if realm == "" {
		// Several realm directives were joined with ","; take the first.
		realm, _, _ = strings.Cut(c["realm"], ",")
	}
	if realm == "" {
		realm = m.host
	}
	cnonce := m.cnonce
	if cnonce == "" {
		if cnonce, err = randomBase64(32); err != nil {
			return nil, fmt.Errorf("DIGEST-MD5: generating cnonce: %w", err)
		}
	}
	useUTF8 := strings.EqualFold(c["charset"], "utf-8")
	digestURI := m.service + "/" + m.host
	const nc, qop = "00000001", "auth"

	// RFC 2831 §2.1.2.1: A1 = H(user:realm:passwd) ":" nonce ":" cnonce.
	a1Inner := md5.Sum(digestCredentialBytes(m.user+":"+realm+":"+m.password, useUTF8))
	a1 := append(a1Inner[:], ":"+nonce+":"+cnonce...)
	ha1 := md5Hex(a1)
	response := md5Hex([]byte(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + md5Hex([]byte("AUTHENTICATE:"+digestURI))))
	// RFC 2831 §2.1.3: rspauth uses A2 without "AUTHENTICATE".
	m.rspauth = md5Hex([]byte(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + md5Hex([]byte(":"+digestURI))))

	var b strings.Builder
	b.WriteString(`username="` + digestQuote(m.user) + `"`)
	b.WriteString(`,realm="` + digestQuote(realm) + `"`)
	b.WriteString(`,qop=auth,nc=` + nc)
	b.WriteString(`,nonce="` + digestQuote(nonce) + `"`)
	b.WriteString(`,cnonce="` + digestQuote(cnonce) + `"`)
	b.WriteString(`,digest-uri="` + digestQuote(digestURI) + `"`)
	if useUTF8 {
		// RFC 2831 §2.1.2: charset=utf-8 is a bare token in the grammar.
		b.WriteString(`,charset=utf-8`)
	}
	b.WriteString(`,response=` + response)
	return []byte(b.String()), nil
}

// checkRspauth verifies the server's proof (RFC 2831 §2.1.3) and returns the
// empty response the SMTP exchange requires before the 235.
func (m *digestMD5Mech) checkRspauth(challenge []byte) ([]byte, error) {
	c, err := parseDigestChallenge(challenge)
	if err != nil {
		return nil, fmt.Errorf("DIGEST-MD5: rspauth challenge: %w", err)
	}
	got, ok := c["rspauth"]
	if !ok {
		return nil, errors.New("DIGEST-MD5: second challenge has no rspauth; the server did not prove it knows the password")
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(m.rspauth)) != 1 {
		return nil, errors.New("DIGEST-MD5: server's rspauth is wrong; the server did not prove it knows the password (possible impostor)")
	}
	return []byte{}, nil
}

// parseDigestChallenge tokenises a digest-challenge (RFC 2831 §2.1.1 and
// §7.1 list syntax): comma-separated key=value or key="quoted\"value"
// pairs. Keys are lower-cased; a repeated key's values are joined with ","
// (several realm directives are allowed).
func parseDigestChallenge(b []byte) (map[string]string, error) {
	out := make(map[string]string)
	s := string(b)
	i := 0
	for {
		for i < len(s) && (s[i] == ',' || s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("malformed challenge: %q has no '='", s[i:])
		}
		key := strings.ToLower(strings.TrimSpace(s[i : i+eq]))
		if key == "" || strings.ContainsAny(key, ",\" \t") {
			return nil, fmt.Errorf("malformed challenge: bad directive name %q", s[i:i+eq])
		}
		i += eq + 1
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val string
		if i < len(s) && s[i] == '"' {
			var v strings.Builder
			i++
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if ch == '"' {
					closed = true
					break
				}
				v.WriteByte(ch)
			}
			if !closed {
				return nil, fmt.Errorf("malformed challenge: unterminated quoted value for %q", key)
			}
			val = v.String()
		} else {
			end := strings.IndexByte(s[i:], ',')
			if end < 0 {
				end = len(s) - i
			}
			val = strings.TrimSpace(s[i : i+end])
			i += end
		}
		if prev, ok := out[key]; ok {
			val = prev + "," + val
		}
		out[key] = val
	}
}

// digestCredentialBytes encodes user:realm:password: UTF-8 when the server
// announced charset=utf-8, else ISO 8859-1 when every character fits
// (RFC 2831 §2.1.2.1), else UTF-8 as the RFC's fallback.
func digestCredentialBytes(s string, useUTF8 bool) []byte {
	if useUTF8 {
		return []byte(s)
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF { // includes utf8.RuneError from invalid UTF-8
			return []byte(s)
		}
		out = append(out, byte(r))
	}
	return out
}

// digestQuote escapes '"' and '\' for a quoted-string (RFC 2616 §2.2 rules,
// which RFC 2831 §7.2 adopts).
func digestQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// listContains reports whether a comma-separated list has item (trimmed,
// case-insensitive).
func listContains(list, item string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(v), item) {
			return true
		}
	}
	return false
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
