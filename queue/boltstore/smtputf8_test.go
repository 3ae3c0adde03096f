package boltstore

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestEnqueueSMTPUTF8FromHeaders: a raw UTF-8 header with ASCII addresses
// is stored smtputf8 (RFC 6531 §3.4: the header section needs it too);
// 8-bit bytes in the body alone are not.
func TestEnqueueSMTPUTF8FromHeaders(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		body string
		want bool
	}{
		{"Subject: Grüße\r\n\r\nhello\r\n", true},
		{"Subject: hello\r\n\r\nGrüße\r\n", false},
		{"Subject: hello\r\n\r\nhello\r\n", false},
	}
	for _, tc := range cases {
		env := Envelope{Sender: "a@example.org", Recipients: []RecipientSpec{{Address: "b@example.org"}}}
		id, err := s.Enqueue(env, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.SMTPUTF8 != tc.want {
			t.Errorf("%q: stored smtputf8 = %v, want %v", tc.body, m.SMTPUTF8, tc.want)
		}
	}
}
