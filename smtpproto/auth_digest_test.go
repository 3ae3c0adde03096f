package smtpproto

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// rfc2831Challenge is the first challenge of the worked example in RFC 2831 §4.
const rfc2831Challenge = `realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`

func TestDigestMD5KnownAnswerRFC2831(t *testing.T) {
	m := &digestMD5Mech{user: "chris", password: "secret", service: "imap", host: "elwood.innosoft.com", cnonce: "OA6MHXh6VqTrRk"}
	ir, err := m.Start()
	if err != nil || ir != nil {
		t.Fatalf("Start() = %q, %v; want no initial response", ir, err)
	}
	resp, err := m.Next([]byte(rfc2831Challenge))
	if err != nil {
		t.Fatalf("Next(challenge): %v", err)
	}
	want := `username="chris",realm="elwood.innosoft.com",qop=auth,nc=00000001,nonce="OA6MG9tEQGm2hh",` +
		`cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",charset=utf-8,response=d388dad90d4bbd760a152321f2143af7`
	if string(resp) != want {
		t.Fatalf("response\n got %s\nwant %s", resp, want)
	}
	final, err := m.Next([]byte("rspauth=ea40f60335c427b5527b84dbabcdfffd"))
	if err != nil {
		t.Fatalf("correct rspauth rejected: %v", err)
	}
	if final == nil || len(final) != 0 {
		t.Fatalf("answer to rspauth = %q (nil=%v); want an empty, non-nil response", final, final == nil)
	}
	if _, err := m.Next([]byte("rspauth=x")); !errors.Is(err, errUnexpectedChallenge) {
		t.Fatalf("third challenge: err = %v, want errUnexpectedChallenge", err)
	}
}

func TestDigestMD5Rspauth(t *testing.T) {
	tests := []struct {
		name, second string
		wantErr      string
	}{
		{"correct", "rspauth=ea40f60335c427b5527b84dbabcdfffd", ""},
		{"correct upper-case hex", "rspauth=EA40F60335C427B5527B84DBABCDFFFD", ""},
		{"wrong", "rspauth=00000000000000000000000000000000", "rspauth is wrong"},
		{"missing", "foo=bar", "no rspauth"},
		{"malformed", `rspauth="unterminated`, "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &digestMD5Mech{user: "chris", password: "secret", service: "imap", host: "elwood.innosoft.com", cnonce: "OA6MHXh6VqTrRk"}
			if _, err := m.Next([]byte(rfc2831Challenge)); err != nil {
				t.Fatal(err)
			}
			_, err := m.Next([]byte(tt.second))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDigestMD5ResponseFields(t *testing.T) {
	tests := []struct {
		name, challenge, settingRealm string
		want                          []string // substrings of the response
		notWant                       []string
		wantErr                       string
	}{
		{name: "sasl.realm wins over challenge", challenge: `realm="srv",nonce="n",qop="auth"`, settingRealm: "R",
			want: []string{`realm="R"`, `digest-uri="smtp/mx.example"`}},
		{name: "first realm of several", challenge: `realm="a",realm="b",nonce="n"`,
			want: []string{`realm="a"`}},
		{name: "no realm: connect host", challenge: `nonce="n",qop="auth"`,
			want: []string{`realm="mx.example"`}},
		{name: "no charset: none sent", challenge: `nonce="n"`, notWant: []string{"charset"}},
		{name: "quotes escaped", challenge: `nonce="a\"b"`, want: []string{`nonce="a\"b"`}},
		{name: "qop without auth", challenge: `nonce="n",qop="auth-conf"`, wantErr: "supports only"},
		{name: "no nonce", challenge: `realm="r"`, wantErr: "no nonce"},
		{name: "garbage", challenge: `no equals sign`, wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Settings{SASLRealm: tt.settingRealm}
			m := newMechanism(mechDigestMD5, s, credentials{User: "alice", Password: "s3cret"}, "mx.example")
			resp, err := m.Next([]byte(tt.challenge))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(resp), w) {
					t.Errorf("response %s lacks %s", resp, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(string(resp), w) {
					t.Errorf("response %s contains %s", resp, w)
				}
			}
			// The random cnonce is 32 bytes in base64 (44 characters).
			c, err := parseDigestChallenge(resp)
			if err != nil || len(c["cnonce"]) != 44 {
				t.Errorf("cnonce %q (err %v), want 44 base64 characters", c["cnonce"], err)
			}
		})
	}
}

func TestParseDigestChallenge(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{in: rfc2831Challenge, want: map[string]string{"realm": "elwood.innosoft.com", "nonce": "OA6MG9tEQGm2hh", "qop": "auth", "algorithm": "md5-sess", "charset": "utf-8"}},
		{in: `Realm="a", realm="b" , NONCE = x`, want: map[string]string{"realm": "a,b", "nonce": "x"}},
		{in: `qop="auth,auth-int",cipher="rc4,des"`, want: map[string]string{"qop": "auth,auth-int", "cipher": "rc4,des"}},
		{in: `a="x\\y\"z"`, want: map[string]string{"a": `x\y"z`}},
		{in: ``, want: map[string]string{}},
		{in: `,,`, want: map[string]string{}},
		{in: `a="open`, wantErr: true},
		{in: `=x`, wantErr: true},
		{in: `novalue`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseDigestChallenge([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseDigestChallenge(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseDigestChallenge(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDigestCredentialBytesCharset(t *testing.T) {
	tests := []struct {
		in      string
		utf8    bool
		want    []byte
		comment string
	}{
		{"a:é", true, []byte("a:\xc3\xa9"), "utf-8 announced"},
		{"a:é", false, []byte("a:\xe9"), "ISO 8859-1 when it fits"},
		{"a:€", false, []byte("a:\xe2\x82\xac"), "UTF-8 fallback outside Latin-1"},
	}
	for _, tt := range tests {
		if got := digestCredentialBytes(tt.in, tt.utf8); string(got) != string(tt.want) {
			t.Errorf("%s: got % x, want % x", tt.comment, got, tt.want)
		}
	}
}

// FuzzParseDigestChallenge: the parser and the whole first step must never
// panic on server-controlled input.
func FuzzParseDigestChallenge(f *testing.F) {
	for _, s := range []string{rfc2831Challenge, `a="x\`, `realm=,nonce=""`, `k="\"\\"`, "rspauth=00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseDigestChallenge(b)
		if err == nil && m == nil {
			t.Fatal("nil map without error")
		}
		d := &digestMD5Mech{user: "u", password: "p", service: "smtp", host: "h", cnonce: "c"}
		if _, err := d.Next(b); err == nil {
			_, _ = d.Next(b)
		}
	})
}
