package esmtp

import (
	"strings"
	"testing"
)

func TestHeaderScan(t *testing.T) {
	cases := []struct {
		msg  string
		want bool
	}{
		{"Subject: hello\r\n\r\nbody\r\n", false},
		{"Subject: héllo\r\n\r\nbody\r\n", true},
		{"Subject: hello\r\n\r\nbödy\r\n", false},
		{"Subject: hello\n\nbödy\n", false},
		{"From: a@x\r\nSubject: x\r\n folded ünïcode\r\n\r\n", true},
		{"\r\nSubject: ü is body\r\n", false}, // no header at all
		{"Subject: no body, ü", true},
	}
	for _, tc := range cases {
		// Fed byte by byte and at once: the result must not depend on the cut.
		var whole, split HeaderScan
		whole.Write([]byte(tc.msg))
		for _, b := range []byte(tc.msg) {
			split.Write([]byte{b})
		}
		if whole.NonASCII() != tc.want || split.NonASCII() != tc.want {
			t.Errorf("%q: NonASCII = %v/%v, want %v", strings.ReplaceAll(tc.msg, "\r\n", "|"), whole.NonASCII(), split.NonASCII(), tc.want)
		}
	}
}

func TestHeaderField(t *testing.T) {
	cases := []struct {
		name, msg, want string
	}{
		{"plain", "From: a@x\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n", "<1@x>"},
		{"any case, LF only", "message-id:<2@x>\nSubject: s\n\n", "<2@x>"},
		{"space before colon", "Message-ID : <3@x>\r\n\r\n", "<3@x>"},
		{"folded", "Message-ID:\r\n <4@x>\r\nSubject: s\r\n\r\n", "<4@x>"},
		{"first of two", "Message-ID: <5@x>\r\nMessage-ID: <6@x>\r\n\r\n", "<5@x>"},
		{"in the body only", "Subject: s\r\n\r\nMessage-ID: <7@x>\r\n", ""},
		{"continuation of another field", "Subject: s\r\n Message-ID: <8@x>\r\n\r\n", ""},
		{"cut mid-line", "Subject: s\r\nMessage-ID: <9@", ""},
		{"cut after the line", "Subject: s\r\nMessage-ID: <10@x>\r\nTo: b", "<10@x>"},
		{"similar name", "Message-IDs: <11@x>\r\n\r\n", ""},
		{"none", "Subject: s\r\n\r\n", ""},
		{"empty", "", ""},
	}
	for _, tc := range cases {
		if got := HeaderField([]byte(tc.msg), "Message-ID"); got != tc.want {
			t.Errorf("%s: HeaderField(%q) = %q, want %q", tc.name, tc.msg, got, tc.want)
		}
	}
}

// FuzzHeaderField: never panics, never returns a line feed, and a field
// found in a cut of the message is found the same in the whole message.
func FuzzHeaderField(f *testing.F) {
	f.Add([]byte("Message-ID:\r\n <4@x>\r\nSubject: s\r\n\r\n"), 12)
	f.Add([]byte("From: a\nmessage-id: <1@x>\n\nb"), 5)
	f.Fuzz(func(t *testing.T, msg []byte, cut int) {
		whole := HeaderField(msg, "Message-ID")
		if strings.Contains(whole, "\n") {
			t.Fatalf("HeaderField(%q) = %q has a line feed", msg, whole)
		}
		if cut < 0 || cut > len(msg) {
			return
		}
		// A complete field in the cut (its next line begun, so no more
		// continuation can follow) is the field of the whole.
		part := msg[:cut]
		if got := HeaderField(part, "Message-ID"); got != "" && got != whole {
			if i := strings.LastIndexByte(string(part), '\n'); i >= 0 && i+1 < len(part) && part[i+1] != ' ' && part[i+1] != '\t' {
				t.Fatalf("cut %q gives %q, whole %q gives %q", part, got, msg, whole)
			}
		}
	})
}
