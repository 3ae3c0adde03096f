package smtpproto

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestSimpleMechanismBytes checks the exact client bytes of PLAIN, LOGIN,
// CRAM-MD5 and XOAUTH2 (docs/javamail.md "Authentication", RFC 2195 §2).
func TestSimpleMechanismBytes(t *testing.T) {
	tests := []struct {
		name       string
		mech       saslMechanism
		wantIR     string // base64; "" = no initial response
		challenges []string
		wantResp   []string // plain text answers, one per challenge
	}{
		{name: "PLAIN default empty authzid (differs from JavaMail's user\\0user\\0pass)",
			mech: &plainMech{user: "alice", password: "s3cret"}, wantIR: "AGFsaWNlAHMzY3JldA=="},
		{name: "PLAIN with sasl.authorizationid=admin",
			mech: &plainMech{authzID: "admin", user: "alice", password: "s3cret"}, wantIR: "YWRtaW4AYWxpY2UAczNjcmV0"},
		{name: "PLAIN UTF-8 credentials",
			mech: &plainMech{user: "jürgen", password: "pässword"}, wantIR: base64.StdEncoding.EncodeToString([]byte("\x00jürgen\x00pässword"))},
		{name: "LOGIN answers in order whatever the challenge says",
			mech: &loginMech{user: "alice", password: "s3cret"}, challenges: []string{"Password:", "Username:"}, wantResp: []string{"alice", "s3cret"}},
		{name: "CRAM-MD5 RFC 2195 example",
			mech: &cramMD5Mech{user: "tim", password: "tanstaaftanstaaf"}, challenges: []string{"<1896.697170952@postoffice.reston.mci.net>"},
			wantResp: []string{"tim b913a602c7eda7a495b4e6e7334d3890"}},
		{name: "XOAUTH2 JavaMail example, error challenge answered empty",
			mech: &xoauth2Mech{user: "alice@example.com", token: "ya29.tok"}, wantIR: "dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRvawEB",
			challenges: []string{`{"status":"401","schemes":"bearer"}`}, wantResp: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ir, err := tt.mech.Start()
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantIR == "" {
				if ir != nil {
					t.Fatalf("initial response %q, want none", ir)
				}
			} else if got := base64.StdEncoding.EncodeToString(ir); got != tt.wantIR {
				t.Fatalf("initial response %s, want %s", got, tt.wantIR)
			}
			for i, c := range tt.challenges {
				resp, err := tt.mech.Next([]byte(c))
				if err != nil {
					t.Fatalf("challenge %d: %v", i, err)
				}
				if resp == nil || string(resp) != tt.wantResp[i] {
					t.Fatalf("answer %d = %q (nil=%v), want %q", i, resp, resp == nil, tt.wantResp[i])
				}
			}
			// One challenge too many is always an error, never a guess.
			if _, err := tt.mech.Next([]byte("more?")); !errors.Is(err, errUnexpectedChallenge) {
				t.Fatalf("extra challenge: err = %v, want errUnexpectedChallenge", err)
			}
		})
	}
}

func TestCredentialsStringRedacts(t *testing.T) {
	c := credentials{User: "alice", Password: "hunter2", OAuth2Token: "ya29.secret"}
	for _, s := range []string{c.String(), c.GoString()} {
		for _, secret := range []string{"hunter2", "ya29.secret"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q leaks %q", s, secret)
			}
		}
	}
}
