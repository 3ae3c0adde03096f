package smtpproto

import (
	"errors"
	"strings"
	"testing"
)

// RFC 7677 §3 example exchange.
const (
	rfc7677ClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfc7677ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfc7677ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfc7677ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func TestSCRAMSHA256KnownAnswerRFC7677(t *testing.T) {
	m := &scramSHA256Mech{user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO"}
	ir, err := m.Start()
	if err != nil || string(ir) != rfc7677ClientFirst {
		t.Fatalf("client-first = %q, %v; want %q", ir, err, rfc7677ClientFirst)
	}
	cf, err := m.Next([]byte(rfc7677ServerFirst))
	if err != nil || string(cf) != rfc7677ClientFinal {
		t.Fatalf("client-final = %q, %v; want %q", cf, err, rfc7677ClientFinal)
	}
	last, err := m.Next([]byte(rfc7677ServerFinal))
	if err != nil || last == nil || len(last) != 0 {
		t.Fatalf("answer to server-final = %q, %v; want empty", last, err)
	}
	if _, err := m.Next([]byte("x=y")); !errors.Is(err, errUnexpectedChallenge) {
		t.Fatalf("extra challenge: %v", err)
	}
}

func TestSCRAMSHA256Rejects(t *testing.T) {
	tests := []struct {
		name, serverFirst, serverFinal, wantErr string
	}{
		{name: "wrong server signature", serverFirst: rfc7677ServerFirst, serverFinal: "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", wantErr: "signature is wrong"},
		{name: "server error attribute", serverFirst: rfc7677ServerFirst, serverFinal: "e=invalid-proof", wantErr: "invalid-proof"},
		{name: "no signature", serverFirst: rfc7677ServerFirst, serverFinal: "x=1", wantErr: "no valid signature"},
		{name: "nonce not extending ours", serverFirst: "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", wantErr: "nonce"},
		{name: "nonce equal to ours", serverFirst: "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", wantErr: "nonce"},
		{name: "bad salt", serverFirst: "r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096", wantErr: "salt"},
		{name: "zero iterations", serverFirst: "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", wantErr: "iteration"},
		{name: "absurd iterations", serverFirst: "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999", wantErr: "iteration"},
		{name: "mandatory extension", serverFirst: "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", wantErr: "extension"},
		{name: "malformed", serverFirst: "garbage", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &scramSHA256Mech{user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO"}
			if _, err := m.Start(); err != nil {
				t.Fatal(err)
			}
			_, err := m.Next([]byte(tt.serverFirst))
			if tt.serverFinal != "" {
				if err != nil {
					t.Fatal(err)
				}
				_, err = m.Next([]byte(tt.serverFinal))
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSCRAMNameEscapingAndRandomNonce(t *testing.T) {
	m := &scramSHA256Mech{user: "a,b=c", authzID: "x=y", password: "p"}
	ir, err := m.Start()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(ir), "n,a=x=3Dy,n=a=2Cb=3Dc,r=") {
		t.Fatalf("client-first %q: saslnames not escaped per RFC 5802 §5.1", ir)
	}
	if n := len(m.clientNonce); n != 32 {
		t.Errorf("random nonce %q has %d characters, want 32 (24 bytes base64)", m.clientNonce, n)
	}
}
