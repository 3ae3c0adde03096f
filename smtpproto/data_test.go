package smtpproto

import (
	"bufio"
	"strings"
	"testing"
)

func TestCanonWriter(t *testing.T) {
	cases := []struct {
		name  string
		in    []string // written in these pieces
		stuff bool
		want  string
	}{
		{"dot-stuffing", []string{".hidden\r\n.\r\nok\r\n"}, true, "..hidden\r\n..\r\nok\r\n"},
		{"first byte dot", []string{".x"}, true, "..x\r\n"},
		{"bare LF to CRLF", []string{"a\nb\n"}, true, "a\r\nb\r\n"},
		{"bare CR to CRLF", []string{"a\rb"}, true, "a\r\nb\r\n"},
		{"CR CR LF", []string{"a\r\r\nb\r\n"}, true, "a\r\n\r\nb\r\n"},
		{"missing final newline", []string{"abc"}, true, "abc\r\n"},
		{"CRLF split across writes", []string{"a\r", "\n.b\r\n"}, true, "a\r\n..b\r\n"},
		{"dot after split LF", []string{"a\n", ".", "b"}, true, "a\r\n..b\r\n"},
		{"no stuffing for BDAT", []string{".x\n"}, false, ".x\r\n"},
		{"empty body", nil, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			bw := bufio.NewWriter(&b)
			cw := newCanonWriter(bw, tc.stuff)
			for _, p := range tc.in {
				cw.Write([]byte(p))
			}
			cw.finish()
			bw.Flush()
			if b.String() != tc.want {
				t.Fatalf("got %q, want %q", b.String(), tc.want)
			}
			if cw.n != int64(len(tc.want)) {
				t.Fatalf("counted %d bytes, wrote %d", cw.n, len(tc.want))
			}
		})
	}
}
