package smtpproto

import (
	"errors"
	"strings"
	"testing"
)

// authBool returns a pointer for the *bool settings.
func authBool(v bool) *bool { return &v }

func TestChooseMechanism(t *testing.T) {
	pw := credentials{User: "alice", Password: "s3cret"}
	tests := []struct {
		name       string
		s          Settings
		creds      *credentials // nil = pw
		advertised string
		want       string // "" = errNoCommonMechanism
	}{
		{name: "default order, server PLAIN LOGIN: PLAIN (differs from JavaMail, which picks LOGIN)", advertised: "PLAIN LOGIN", want: "PLAIN"},
		{name: "default order prefers SCRAM-SHA-256 regardless of server order", advertised: "LOGIN PLAIN SCRAM-SHA-256", want: "SCRAM-SHA-256"},
		{name: "default order: DIGEST-MD5 before CRAM-MD5 before NTLM", advertised: "NTLM CRAM-MD5 DIGEST-MD5", want: "DIGEST-MD5"},
		{name: "auth.mechanisms=PLAIN, server LOGIN PLAIN", s: Settings{AuthMechanisms: "PLAIN"}, advertised: "LOGIN PLAIN", want: "PLAIN"},
		{name: "auth.mechanisms is case-insensitive and skips unknown tokens", s: Settings{AuthMechanisms: "gssapi login"}, advertised: "GSSAPI LOGIN", want: "LOGIN"},
		{name: "auth.mechanisms accepts commas", s: Settings{AuthMechanisms: "CRAM-MD5,LOGIN"}, advertised: "LOGIN CRAM-MD5", want: "CRAM-MD5"},
		{name: "AUTH=LOGIN hack: merged list holds LOGIN", advertised: "LOGIN", want: "LOGIN"},
		{name: "auth.login.disable, server LOGIN PLAIN", s: Settings{AuthLoginDisable: true, AuthPlainDisable: false}, advertised: "LOGIN PLAIN", want: "PLAIN"},
		{name: "auth.login.disable applies even when auth.mechanisms=LOGIN (differs from JavaMail)", s: Settings{AuthLoginDisable: true, AuthMechanisms: "LOGIN"}, advertised: "LOGIN PLAIN", want: ""},
		{name: "auth.plain.disable, server PLAIN DIGEST-MD5", s: Settings{AuthPlainDisable: true}, advertised: "PLAIN DIGEST-MD5", want: "DIGEST-MD5"},
		{name: "auth.plain.disable applies with auth.mechanisms (differs from JavaMail)", s: Settings{AuthPlainDisable: true, AuthMechanisms: "PLAIN LOGIN"}, advertised: "PLAIN LOGIN", want: "LOGIN"},
		{name: "auth.digest-md5.disable, server DIGEST-MD5 NTLM", s: Settings{AuthDigestDisable: true}, advertised: "DIGEST-MD5 NTLM", want: "NTLM"},
		{name: "auth.ntlm.disable, server NTLM only: none", s: Settings{AuthNTLMDisable: true}, advertised: "NTLM", want: ""},
		{name: "XOAUTH2 off by default", advertised: "XOAUTH2", want: ""},
		{name: "auth.xoauth2.disable=false, server XOAUTH2", s: Settings{AuthXOAuth2Disable: authBool(false)}, advertised: "XOAUTH2", want: "XOAUTH2"},
		{name: "auth.xoauth2.disable=false keeps default order: server LOGIN XOAUTH2 gets LOGIN", s: Settings{AuthXOAuth2Disable: authBool(false)}, advertised: "LOGIN XOAUTH2", want: "LOGIN"},
		{name: "auth.mechanisms=XOAUTH2 enables it", s: Settings{AuthMechanisms: "XOAUTH2"}, advertised: "LOGIN XOAUTH2", want: "XOAUTH2"},
		{name: "auth.xoauth2.disable=true beats auth.mechanisms=XOAUTH2 (differs from JavaMail)", s: Settings{AuthMechanisms: "XOAUTH2", AuthXOAuth2Disable: authBool(true)}, advertised: "XOAUTH2", want: ""},
		{name: "token only: password mechanisms skipped, XOAUTH2 used", s: Settings{AuthXOAuth2Disable: authBool(false)}, creds: &credentials{User: "a", OAuth2Token: "tok"}, advertised: "PLAIN XOAUTH2", want: "XOAUTH2"},
		{name: "no secret at all: none", creds: &credentials{User: "a"}, advertised: "PLAIN LOGIN", want: ""},
		{name: "server advertises nothing", advertised: "", want: ""},
		{name: "sasl.enable with sasl.mechanisms=CRAM-MD5, server CRAM-MD5 PLAIN", s: Settings{SASLEnable: true, SASLMechanisms: "CRAM-MD5"}, advertised: "CRAM-MD5 PLAIN", want: "CRAM-MD5"},
		{name: "sasl.enable, sasl.mechanisms in configured order, comma separated", s: Settings{SASLEnable: true, SASLMechanisms: "login,plain"}, advertised: "PLAIN LOGIN", want: "LOGIN"},
		{name: "sasl.enable without sasl.mechanisms: server order, DIGEST-MD5 before PLAIN", s: Settings{SASLEnable: true}, advertised: "DIGEST-MD5 PLAIN", want: "DIGEST-MD5"},
		{name: "sasl.enable server order skips unimplemented and XOAUTH2", s: Settings{SASLEnable: true}, advertised: "GSSAPI XOAUTH2 NTLM PLAIN", want: "NTLM"},
		{name: "sasl.enable server order still applies disable flags", s: Settings{SASLEnable: true, AuthDigestDisable: true}, advertised: "DIGEST-MD5 PLAIN", want: "PLAIN"},
		{name: "sasl.enable naming XOAUTH2 enables it", s: Settings{SASLEnable: true, SASLMechanisms: "XOAUTH2"}, advertised: "PLAIN XOAUTH2", want: "XOAUTH2"},
		{name: "sasl.enable: no fallback to auth.mechanisms list (differs from JavaMail)", s: Settings{SASLEnable: true, SASLMechanisms: "GSSAPI"}, advertised: "GSSAPI PLAIN", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pw
			if tt.creds != nil {
				c = *tt.creds
			}
			m, err := chooseMechanism(&tt.s, strings.Fields(tt.advertised), c, "mx.example")
			if tt.want == "" {
				if !errors.Is(err, errNoCommonMechanism) {
					t.Fatalf("got %v, %v; want errNoCommonMechanism", m, err)
				}
				if !strings.Contains(err.Error(), "no authentication mechanisms supported by both server and client") {
					t.Errorf("error text %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if m.Name() != tt.want {
				t.Fatalf("chose %s, want %s", m.Name(), tt.want)
			}
		})
	}
}

func TestChooseMechanismErrorNamesBothLists(t *testing.T) {
	_, err := chooseMechanism(&Settings{AuthNTLMDisable: true}, []string{"NTLM", "GSSAPI"}, credentials{User: "u", Password: "secret-pw"}, "h")
	if err == nil {
		t.Fatal("want error")
	}
	msg := err.Error()
	for _, want := range []string{`"NTLM GSSAPI"`, "SCRAM-SHA-256 PLAIN LOGIN DIGEST-MD5 CRAM-MD5"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "secret-pw") {
		t.Errorf("error leaks the password: %q", msg)
	}
	if strings.Contains(strings.SplitN(msg, "candidates", 2)[1], "NTLM") {
		t.Errorf("disabled NTLM listed as a candidate: %q", msg)
	}
}

// TestChosenMechanismsUseSettings checks that the wiring passes route
// settings into the mechanism (authzid, digest-uri host, NTLM domain).
func TestChosenMechanismsUseSettings(t *testing.T) {
	c := credentials{User: "alice", Password: "s3cret"}
	tests := []struct {
		name string
		s    Settings
		mech string
		want string // substring of the first client message (IR, else answer to a challenge)
	}{
		{"PLAIN carries sasl.authorizationid", Settings{SASLAuthzID: "admin"}, "PLAIN", "admin\x00alice\x00s3cret"},
		{"SCRAM carries sasl.authorizationid", Settings{SASLAuthzID: "admin"}, "SCRAM-SHA-256", "n,a=admin,n=alice,r="},
		{"DIGEST-MD5 digest-uri smtp/<host>", Settings{}, "DIGEST-MD5", `digest-uri="smtp/mx.example"`},
		{"NTLM domain", Settings{NTLMDomain: "CORP", Localhost: "ws"}, "NTLM", "wsCORP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.AuthMechanisms = tt.mech
			m, err := chooseMechanism(&tt.s, []string{tt.mech}, c, "mx.example")
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Start()
			if err == nil && out == nil {
				out, err = m.Next([]byte(`nonce="n"`))
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("first message %q lacks %q", out, tt.want)
			}
		})
	}
}
