package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// terminalSafe wraps the writer of list's and show's human output so that
// control characters from subjects, senders, addresses and server replies
// cannot drive the operator's terminal (escape sequences, cursor moves,
// title changes): C0 controls other than tab and newline, DEL, C1 controls
// and invalid UTF-8 are printed as visible escapes such as \x1b. JSON output
// does not go through it and stays exact.
func terminalSafe(w io.Writer) io.Writer { return safeWriter{w} }

type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, sanitizeForTerminal(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sanitizeForTerminal replaces what a terminal would interpret, keeping
// tab and newline (the output's own layout).
func sanitizeForTerminal(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
		return true
	case r == utf8.RuneError:
		return true
	case r == 0x202e || r == 0x202d || r >= 0x2066 && r <= 0x2069: // bidi overrides and isolates
		return true
	}
	return false
}
