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
