package intake

import (
	"errors"
	"io"
	"strings"
	"testing"

	"mailq/queue"
)

func TestLimitsBody(t *testing.T) {
	l := Limits{MaxMessageSize: 10000, MaxHeaderSize: 100, MaxLineLength: 50}
	tests := []struct {
		name string
		body string
		want error
	}{
		{"fine", "Subject: a\r\n\r\n" + strings.Repeat(strings.Repeat("x", 48)+"\r\n", 100), nil},
		{"line of exactly the limit", strings.Repeat("x", 48) + "\r\n", nil},
		{"line one over", strings.Repeat("x", 49) + "\r\n", ErrLineTooLong},
		{"last line without newline, too long", "a\r\n\r\n" + strings.Repeat("x", 51), ErrLineTooLong},
		{"header too large", strings.Repeat("H: "+strings.Repeat("v", 20)+"\r\n", 5) + "\r\nbody", ErrHeaderTooLarge},
		{"large body after a small header", "H: v\r\n\r\n" + strings.Repeat("b\r\n", 200), nil},
		{"LF-only blank line ends the header", "H: v\n\n" + strings.Repeat("b\n", 200), nil},
		{"too large", "H: v\r\n\r\n" + strings.Repeat("x\r\n", 4000), ErrTooLarge},
		{"empty", "", ErrEmptyMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per read as well as all at once: limits must not
			// depend on how the input is cut.
			for _, r := range []io.Reader{strings.NewReader(tt.body), &oneByteReader{s: tt.body}} {
				got, err := io.ReadAll(l.Body(r))
				if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if tt.want == nil && string(got) != tt.body {
					t.Fatalf("body changed")
				}
			}
		})
	}
}

type oneByteReader struct{ s string }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

func TestLimitsRecipients(t *testing.T) {
	env := queue.Envelope{Recipients: make([]queue.RecipientSpec, 3)}
	if err := (Limits{MaxRecipients: 3}).CheckEnvelope(&env); err != nil {
		t.Fatal(err)
	}
	if err := (Limits{MaxRecipients: 2}).CheckEnvelope(&env); !errors.Is(err, ErrTooManyRecipients) {
		t.Fatalf("err = %v", err)
	}
}
