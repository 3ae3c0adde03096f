package arrival

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestArrivalReaderMessageID: the Message-ID is found in the header
// however the message is cut into reads, and never in the body.
func TestArrivalReaderMessageID(t *testing.T) {
	cases := []struct{ name, msg, want string }{
		{"CRLF", "Received: x\r\nMessage-ID: <a@x>\r\n\r\nbody\r\n", "<a@x>"},
		{"LF", "Received: x\nmessage-id: <b@x>\n\nbody\n", "<b@x>"},
		{"folded", "Received: x\r\nMessage-ID:\r\n\t<c@x>\r\n\r\n", "<c@x>"},
		{"only in the body", "Received: x\r\n\r\nMessage-ID: <d@x>\r\n", ""},
		{"no header", "\r\nMessage-ID: <e@x>\r\n", ""},
		{"ends inside the header", "Received: x\r\nMessage-ID: <f@x>", "<f@x>"},
		{"after a long header", "Received: x\r\n" + strings.Repeat("X-Pad: 0123456789\r\n", 500) + "Message-ID: <g@x>\r\n\r\nb", "<g@x>"},
	}
	for _, tc := range cases {
		for _, how := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"byte by byte", iotest.OneByteReader}} {
			a := NewReader(how.wrap(strings.NewReader(tc.msg)))
			if _, err := io.Copy(io.Discard, a); err != nil {
				t.Fatal(err)
			}
			if got := a.MessageID(); got != tc.want {
				t.Errorf("%s, %s: MessageID = %q, want %q", tc.name, how.name, got, tc.want)
			}
			if a.Size() != int64(len(tc.msg)) {
				t.Errorf("%s, %s: Size = %d, want %d", tc.name, how.name, a.Size(), len(tc.msg))
			}
		}
	}
}
