package smtpproto

// Mechanism choice (docs/configuration.md, rows auth.mechanisms and sasl.*).
// mailq deliberately differs from JavaMail (docs/javamail.md "Where mailq differs"):
// the *.disable flags apply even when auth.mechanisms is set (quirk 3), the
// default order prefers SCRAM-SHA-256 and PLAIN over LOGIN, and sasl.enable
// replaces the candidate list without falling back to the built-in one.

import (
	"errors"
	"fmt"
	"strings"
)

// defaultAuthMechanisms is mailq's client preference order when
// auth.mechanisms is unset: strongest first, then PLAIN before LOGIN
// (one round trip fewer). XOAUTH2 is appended only when enabled.
const defaultAuthMechanisms = "SCRAM-SHA-256 PLAIN LOGIN DIGEST-MD5 CRAM-MD5 NTLM"

// errNoCommonMechanism is wrapped by chooseMechanism's error so callers can
// test for it with errors.Is.
var errNoCommonMechanism = errors.New("no authentication mechanisms supported by both server and client")

// chooseMechanism per docs/configuration.md: candidates = auth.mechanisms (default order "SCRAM-SHA-256 PLAIN LOGIN DIGEST-MD5 CRAM-MD5 NTLM"; XOAUTH2 only when named or its disable flag is explicitly false) minus every disabled one (disable flags ALWAYS apply — mailq differs from JavaMail quirk 3); with sasl.enable the candidate list is sasl.mechanisms (comma or space separated) in that order, or when unset, the server's order; the first candidate the server advertises is used; advertised is the uppercase list from "AUTH" and "AUTH=" EHLO lines merged (AUTH=LOGIN hack). serverHost is for DIGEST-MD5 digest-uri "smtp/<host>". Error when none: "no authentication mechanisms supported by both server and client" plus the lists.
//
// A candidate whose secret is missing is skipped too: password mechanisms
// need a password, XOAUTH2 needs a token (oauth2.token_file, else the
// password, which is what JavaMail sends as the token).
func chooseMechanism(s *Settings, advertised []string, creds credentials, serverHost string) (saslMechanism, error) {
	offered := make(map[string]bool, len(advertised))
	for _, a := range advertised {
		offered[strings.ToUpper(strings.TrimSpace(a))] = true
	}
	candidates := authCandidates(s, advertised)
	for _, name := range candidates {
		if !offered[name] || mechanismDisabled(s, name, candidates) || !haveSecretFor(name, creds) {
			continue
		}
		if m := newMechanism(name, s, creds, serverHost); m != nil {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w (server offers %q; mailq's candidates after auth.*.disable are %q%s)",
		errNoCommonMechanism, strings.Join(advertised, " "), strings.Join(enabledCandidates(s, candidates), " "), missingSecretHint(creds))
}

// authCandidates returns the ordered, upper-cased candidate list before
// disable flags are applied.
func authCandidates(s *Settings, advertised []string) []string {
	if s.SASLEnable {
		if l := splitMechanisms(s.SASLMechanisms); len(l) > 0 {
			return l
		}
		return splitMechanisms(strings.Join(advertised, " ")) // server order
	}
	if l := splitMechanisms(s.AuthMechanisms); len(l) > 0 {
		return l
	}
	l := splitMechanisms(defaultAuthMechanisms)
	if s.AuthXOAuth2Disable != nil && !*s.AuthXOAuth2Disable {
		l = append(l, mechXOAUTH2)
	}
	return l
}

// splitMechanisms splits on spaces, tabs and commas and upper-cases.
func splitMechanisms(v string) []string {
	return strings.FieldsFunc(strings.ToUpper(v), func(r rune) bool {
		return r == ' ' || r == ',' || r == '\t'
	})
}

// mechanismDisabled applies the auth.<mech>.disable flags. XOAUTH2 is off
// unless its flag is explicitly false or the configured list names it
// (an explicit true always wins). Server order under sasl.enable without
// sasl.mechanisms does not count as naming it.
func mechanismDisabled(s *Settings, name string, candidates []string) bool {
	switch name {
	case mechLOGIN:
		return s.AuthLoginDisable
	case mechPLAIN:
		return s.AuthPlainDisable
	case mechDigestMD5:
		return s.AuthDigestDisable
	case mechNTLM:
		return s.AuthNTLMDisable
	case mechXOAUTH2:
		if s.AuthXOAuth2Disable != nil {
			return *s.AuthXOAuth2Disable
		}
		return !namesMechanism(s, mechXOAUTH2)
	}
	return false
}

// namesMechanism reports whether the operator's own list (auth.mechanisms,
// or sasl.mechanisms under sasl.enable) contains name.
func namesMechanism(s *Settings, name string) bool {
	list := s.AuthMechanisms
	if s.SASLEnable {
		list = s.SASLMechanisms
	}
	for _, m := range splitMechanisms(list) {
		if m == name {
			return true
		}
	}
	return false
}

func haveSecretFor(name string, c credentials) bool {
	if name == mechXOAUTH2 {
		return c.OAuth2Token != "" || c.Password != ""
	}
	return c.Password != ""
}

func enabledCandidates(s *Settings, candidates []string) []string {
	var out []string
	for _, c := range candidates {
		if !mechanismDisabled(s, c, candidates) {
			out = append(out, c)
		}
	}
	return out
}

func missingSecretHint(c credentials) string {
	if c.Password == "" && c.OAuth2Token == "" {
		return "; no password or token is configured"
	}
	if c.Password == "" {
		return "; only an OAuth2 token is configured, which only XOAUTH2 can use"
	}
	return ""
}

// newMechanism returns the implementation of name, or nil for a name mailq
// does not implement (such tokens are skipped, as in JavaMail).
func newMechanism(name string, s *Settings, c credentials, serverHost string) saslMechanism {
	switch name {
	case mechPLAIN:
		return &plainMech{authzID: s.SASLAuthzID, user: c.User, password: c.Password}
	case mechLOGIN:
		return &loginMech{user: c.User, password: c.Password}
	case mechCRAMMD5:
		return &cramMD5Mech{user: c.User, password: c.Password}
	case mechDigestMD5:
		return &digestMD5Mech{user: c.User, password: c.Password, realm: s.SASLRealm, service: "smtp", host: serverHost}
	case mechNTLM:
		return newNTLMMech(s, c)
	case mechXOAUTH2:
		token := c.OAuth2Token
		if token == "" {
			token = c.Password
		}
		return &xoauth2Mech{user: c.User, token: token}
	case mechSCRAMSHA256:
		return &scramSHA256Mech{authzID: s.SASLAuthzID, user: c.User, password: c.Password}
	}
	return nil
}
