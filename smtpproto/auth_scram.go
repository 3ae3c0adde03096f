package smtpproto

// SCRAM-SHA-256 (RFC 5802 with the hash of RFC 7677), without channel
// binding ("n" GS2 flag). Both sides prove knowledge of the password; the
// server's proof is checked before the exchange may succeed.

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// scramMaxIterations bounds the PBKDF2 work a server can make us do; RFC
// 7677 §4 recommends at least 4096, and real servers use well under this.
const scramMaxIterations = 10_000_000

type scramSHA256Mech struct {
	authzID, user, password string
	clientNonce             string // "" = 24 random bytes in base64; tests inject one

	step            int
	clientFirstBare string
	serverSignature []byte
	verified        bool // the server's signature matched (RFC 5802 §3)
}

func (m *scramSHA256Mech) Name() string { return mechSCRAMSHA256 }

// serverVerified reports whether the server-final-message was checked.
func (m *scramSHA256Mech) serverVerified() bool { return m.verified }

// Start returns client-first-message = gs2-header client-first-message-bare
// (RFC 5802 §7).
func (m *scramSHA256Mech) Start() ([]byte, error) {
	if m.clientNonce == "" {
		n, err := randomBase64(24)
		if err != nil {
			return nil, fmt.Errorf("SCRAM-SHA-256: generating nonce: %w", err)
		}
		m.clientNonce = n
	}
	m.clientFirstBare = "n=" + scramName(m.user) + ",r=" + m.clientNonce
	return []byte(m.gs2Header() + m.clientFirstBare), nil
}

func (m *scramSHA256Mech) gs2Header() string {
	if m.authzID == "" {
		return "n,,"
	}
	return "n,a=" + scramName(m.authzID) + ","
}

func (m *scramSHA256Mech) Next(challenge []byte) ([]byte, error) {
	m.step++
	switch m.step {
	case 1:
		return m.clientFinal(string(challenge))
	case 2:
		return m.verifyServerFinal(string(challenge))
	default:
		return nil, fmt.Errorf("SCRAM-SHA-256: challenge after server-final-message: %w", errUnexpectedChallenge)
	}
}

// clientFinal answers server-first-message with client-final-message
// (RFC 5802 §3 and §7).
func (m *scramSHA256Mech) clientFinal(serverFirst string) ([]byte, error) {
	if m.clientFirstBare == "" {
		return nil, errors.New("SCRAM-SHA-256: challenge before Start")
	}
	attrs, err := scramAttributes(serverFirst)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(serverFirst, "m=") {
		return nil, errors.New("SCRAM-SHA-256: server requires an unsupported mandatory extension")
	}
	nonce := attrs["r"]
	if !strings.HasPrefix(nonce, m.clientNonce) || len(nonce) == len(m.clientNonce) {
		return nil, errors.New("SCRAM-SHA-256: server nonce does not extend ours (RFC 5802 §5.1); possible replay")
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil || len(salt) == 0 {
		return nil, errors.New("SCRAM-SHA-256: server sent a missing or malformed salt")
	}
	iter, err := strconv.Atoi(attrs["i"])
	if err != nil || iter < 1 || iter > scramMaxIterations {
		return nil, fmt.Errorf("SCRAM-SHA-256: server iteration count %q is not in 1..%d", attrs["i"], scramMaxIterations)
	}
	// TODO(SASLprep): RFC 5802 §2.2 normalises the password with SASLprep
	// (RFC 4013); mailq sends it as UTF-8 unchanged, which is identical for
	// ASCII passwords.
	salted, err := pbkdf2.Key(sha256.New, m.password, salt, iter, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("SCRAM-SHA-256: deriving key: %w", err)
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(m.gs2Header())) + ",r=" + nonce
	authMessage := []byte(m.clientFirstBare + "," + serverFirst + "," + withoutProof)

	clientKey := hmacSHA256(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	proof := hmacSHA256(storedKey[:], authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	m.serverSignature = hmacSHA256(hmacSHA256(salted, []byte("Server Key")), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verifyServerFinal checks "v=ServerSignature" (RFC 5802 §3) and returns the
// empty response SMTP needs before the 235 (RFC 4954 §4).
func (m *scramSHA256Mech) verifyServerFinal(serverFinal string) ([]byte, error) {
	attrs, err := scramAttributes(serverFinal)
	if err != nil {
		return nil, err
	}
	if e, ok := attrs["e"]; ok {
		return nil, fmt.Errorf("SCRAM-SHA-256: server reported error %q", e)
	}
	v, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || len(v) == 0 {
		return nil, errors.New("SCRAM-SHA-256: server-final-message has no valid signature")
	}
	if subtle.ConstantTimeCompare(v, m.serverSignature) != 1 {
		return nil, errors.New("SCRAM-SHA-256: server signature is wrong; the server did not prove it knows the password (possible impostor)")
	}
	m.verified = true
	return []byte{}, nil
}

// scramAttributes splits "a=v,b=w" into a map; the first occurrence wins.
func scramAttributes(msg string) (map[string]string, error) {
	out := make(map[string]string)
	for _, f := range strings.Split(msg, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || len(k) != 1 {
			return nil, fmt.Errorf("SCRAM-SHA-256: malformed server message attribute %q", f)
		}
		if _, dup := out[k]; !dup {
			out[k] = v
		}
	}
	return out, nil
}

// scramName escapes ',' and '=' in a saslname (RFC 5802 §5.1).
func scramName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func hmacSHA256(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}
