package intake

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// referenceScan is the byte-at-a-time rule checkedBody.scan implements
// faster: how many bytes of body pass the line and header limits, and which
// limit stops the rest.
func referenceScan(body []byte, l Limits) (int, error) {
	line, header, inHeader, prev := 0, int64(0), true, byte(0)
	for i, c := range body {
		line++
		if inHeader {
			header++
		}
		if line > l.MaxLineLength {
			return i, ErrLineTooLong
		}
		if inHeader && header > l.MaxHeaderSize {
			return i, ErrHeaderTooLarge
		}
		if c == '\n' {
			if line == 1 || line == 2 && prev == '\r' {
				inHeader = false
			}
			line = 0
		}
		prev = c
	}
	return len(body), nil
}

// readCut reads r in pieces of the given sizes (cycling), the way a
// connection hands a body over in arbitrary reads.
type readCut struct {
	r     io.Reader
	sizes []int
	n     int
}

func (c *readCut) Read(p []byte) (int, error) {
	k := max(c.sizes[c.n%len(c.sizes)], 1)
	c.n++
	return c.r.Read(p[:min(k, len(p))])
}

func checkScanAgrees(t *testing.T, body []byte, cuts []int) {
	t.Helper()
	l := Limits{MaxHeaderSize: 64, MaxLineLength: 20}.withDefaults()
	wantN, wantErr := referenceScan(body, l)
	got, err := io.ReadAll(l.Body(&readCut{r: bytes.NewReader(body), sizes: cuts}))
	if len(body) == 0 {
		wantErr = ErrEmptyMessage
	}
	if wantErr == nil && err != nil || wantErr != nil && !errors.Is(err, wantErr) {
		t.Fatalf("body %q cut %v: err = %v, want %v", body, cuts, err, wantErr)
	}
	if wantErr != ErrEmptyMessage && len(got) != wantN {
		t.Fatalf("body %q cut %v: %d bytes passed, want %d (%v)", body, cuts, len(got), wantN, wantErr)
	}
}

// TestLimitsScanAgreesWithBytewise: the line-at-a-time body scan passes
// exactly the bytes the byte-at-a-time rule passes, however reads cut it.
func TestLimitsScanAgreesWithBytewise(t *testing.T) {
	long := strings.Repeat("x", 19)
	for _, body := range []string{
		"H: v\r\n\r\n" + long + "\r\n" + long + "x\r\nafter",
		"H: v\r\n\r\n" + long + "\n" + long + "\n",
		"H: v\n\n" + strings.Repeat("y", 25),
		"H: v\r\n\r\nshort\r\n" + long + "xx",
		strings.Repeat("H: "+strings.Repeat("v", 10)+"\r\n", 6) + "\r\nbody",
		"\r\n" + long + "\r\n" + long + "\r\n",
	} {
		for _, cuts := range [][]int{{1 << 20}, {1}, {3, 7}, {19, 1, 2}} {
			checkScanAgrees(t, []byte(body), cuts)
		}
	}
}

func FuzzLimitsScan(f *testing.F) {
	f.Add([]byte("H: v\r\n\r\n"+strings.Repeat("x", 30)), uint8(5), uint8(1))
	f.Add([]byte("H: v\n\nabc\ndef\n"), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, a, b uint8) {
		checkScanAgrees(t, body, []int{int(a), int(b)})
	})
}
