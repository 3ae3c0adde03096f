package events

import (
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"id":7,"type":"bounced"}`)
	now := time.Unix(1_800_000_000, 0)
	good := Sign(secret, now, body)
	if !strings.HasPrefix(good, "t=1800000000,v1=") || len(good) != len("t=1800000000,v1=")+64 {
		t.Fatalf("Sign = %q, want t=<unix>,v1=<64 hex digits>", good)
	}
	tests := []struct {
		name    string
		secret  string
		header  string
		body    string
		now     time.Time
		wantErr string
	}{
		{"good", "s3cret", good, string(body), now, ""},
		{"good, clock a little ahead", "s3cret", good, string(body), now.Add(4 * time.Minute), ""},
		{"body changed", "s3cret", good, `{"id":7,"type":"delivered"}`, now, "does not match"},
		{"wrong secret", "other", good, string(body), now, "does not match"},
		{"replayed later", "s3cret", good, string(body), now.Add(10 * time.Minute), "away from now"},
		{"timestamp changed", "s3cret", strings.Replace(good, "t=1800000000", "t=1800000001", 1), string(body), now, "does not match"},
		{"no v1", "s3cret", "t=1800000000", string(body), now, "lacks"},
		{"not hex", "s3cret", "t=1800000000,v1=zz", string(body), now, "not hex"},
		{"empty", "s3cret", "", string(body), now, "lacks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify([]byte(tc.secret), tc.header, []byte(tc.body), tc.now, 5*time.Minute)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestSignatureByHand checks the documented scheme against an independent
// implementation, as an application would compute it (docs/events.md):
// HMAC-SHA256 of "<t>.<body>" keyed by the secret, in hex; want is from
// openssl.
func TestSignatureByHand(t *testing.T) {
	// echo -n '1800000000.{"id":1}' | openssl dgst -sha256 -hmac key
	const want = "t=1800000000,v1=3d68ae8e753deb5a6c0337e026fbb6eaac303d65765c096e313fb48585f5dbcf"
	got := Sign([]byte("key"), time.Unix(1_800_000_000, 0), []byte(`{"id":1}`))
	if got != want {
		t.Fatalf("Sign = %q", got)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("t=1800000000,v1=00", []byte("{}"))
	f.Add(Sign([]byte("k"), time.Unix(1_800_000_000, 0), []byte("{}")), []byte("{}"))
	at := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if Verify([]byte("k"), header, body, at, time.Minute) != nil {
			return
		}
		// Accepted: the header must carry the body's true MAC (field order,
		// spaces and the case of the hex digits may vary).
		if want := Sign([]byte("k"), at, body); !strings.Contains(strings.ToLower(header), want[len("t=1800000000,"):]) {
			t.Fatalf("Verify accepted %q for %q", header, body)
		}
	})
}
