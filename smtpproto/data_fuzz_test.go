package smtpproto

import (
	"bufio"
	"strings"
	"testing"
)

// referenceCanon is the rule canonWriter implements, a byte at a time over
// the whole body: every CRLF, bare CR and bare LF becomes CRLF, a line
// starting with "." gets another (when stuffing), and a last line without
// an ending gets CRLF.
func referenceCanon(in []byte, stuff bool) string {
	var out []byte
	lineStart := true
	for i := 0; i < len(in); i++ {
		c := in[i]
		if lineStart && stuff && c == '.' {
			out = append(out, '.')
		}
		switch c {
		case '\r':
			out = append(out, "\r\n"...)
			if i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
			lineStart = true
		case '\n':
			out = append(out, "\r\n"...)
			lineStart = true
		default:
			out = append(out, c)
			lineStart = false
		}
	}
	if !lineStart {
		out = append(out, "\r\n"...)
	}
	return string(out)
}

// canonInPieces writes in to a canonWriter cut at the given offsets.
func canonInPieces(in []byte, stuff bool, cuts ...int) (string, int64) {
	var b strings.Builder
	bw := bufio.NewWriterSize(&b, 16)
	cw := newCanonWriter(bw, stuff)
	prev := 0
	for _, c := range cuts {
		c = min(max(c, prev), len(in))
		cw.Write(in[prev:c])
		prev = c
	}
	cw.Write(in[prev:])
	cw.finish()
	bw.Flush()
	return b.String(), cw.n
}

// TestCanonWriterRunsOfCleanLines: whole CRLF lines pass in one write, and
// the line after them is still stuffed or canonicalised.
func TestCanonWriterRunsOfCleanLines(t *testing.T) {
	for _, in := range []string{
		"a\r\nb\r\n.c\r\nd\r\n",
		"a\r\nb\r\nc\nd\r\n",
		"a\r\nb\rc\r\nd",
		"a\r\n\r\n\r\n..\r\n.\r\n",
		strings.Repeat(strings.Repeat("x", 77)+"\r\n", 50) + ".end",
	} {
		for _, stuff := range []bool{true, false} {
			want := referenceCanon([]byte(in), stuff)
			for _, cut := range []int{0, 1, 3, len(in) / 2, len(in) - 1} {
				got, n := canonInPieces([]byte(in), stuff, cut)
				if got != want || n != int64(len(want)) {
					t.Fatalf("%q (stuff %v, cut at %d): got %q (%d bytes counted), want %q", in, stuff, cut, got, n, want)
				}
			}
		}
	}
}

func FuzzCanonWriter(f *testing.F) {
	f.Add([]byte("a\r\n.b\r\nc\rd\ne"), true, uint16(2), uint16(7))
	f.Add([]byte(".\r\n\r\r\n\n."), false, uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, stuff bool, a, b uint16) {
		want := referenceCanon(in, stuff)
		got, n := canonInPieces(in, stuff, int(a), int(b))
		if got != want || n != int64(len(want)) {
			t.Fatalf("%q (stuff %v, cuts %d %d): got %q (%d bytes counted), want %q", in, stuff, a, b, got, n, want)
		}
	})
}
