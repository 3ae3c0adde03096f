package boltstore

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestEnqueueRoundTrip(t *testing.T) {
	ts := openTestStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 10<<20+12345) // 10 MiB plus a partial last chunk
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		body []byte
	}{
		{"10MiB", big},
		{"empty", nil},
		{"exactly one chunk", big[:bodyChunkSize]},
		{"one byte", []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Envelope{
				Sender: "a@example.com", EnvID: "env-1", Ret: "HDRS", SMTPUTF8: true, Source: "smtp",
				Recipients: []RecipientSpec{
					{Address: "b@example.org", Notify: "FAILURE,DELAY", ORCPT: "rfc822;b@example.org"},
					{Address: "c@example.net", Notify: "NEVER"},
					{Address: "d@example.org"},
				},
			}
			id, err := ts.Enqueue(env, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			if got := ts.body(t, id); !bytes.Equal(got, tt.body) {
				t.Fatalf("body differs: got %d bytes, want %d", len(got), len(tt.body))
			}
			m := ts.mustGet(t, id)
			if m.ID != id || m.Sender != env.Sender || m.Size != int64(len(tt.body)) || m.EnvID != "env-1" ||
				m.Ret != "HDRS" || !m.SMTPUTF8 || m.Source != "smtp" || m.Status != StatusQueued ||
				!m.Arrival.Equal(ts.clock.Now()) || !m.NextAttempt.Equal(ts.clock.Now()) {
				t.Errorf("Get = %+v", m)
			}
			if len(m.Recipients) != 3 {
				t.Fatalf("recipients = %+v", m.Recipients)
			}
			for i, rs := range env.Recipients {
				r := m.Recipients[i]
				if r.Address != rs.Address || r.Notify != rs.Notify || r.ORCPT != rs.ORCPT ||
					r.State != Pending || r.Attempts != 0 || r.LastReply != nil {
					t.Errorf("recipient %d = %+v, want from %+v", i, r, rs)
				}
			}
			// Survives a reopen, nanoseconds included.
			ts.reopen(t)
			if m2 := ts.mustGet(t, id); !m2.Arrival.Equal(m.Arrival) || m2.Size != m.Size {
				t.Errorf("after reopen: %+v, want %+v", m2, m)
			}
			if got := ts.body(t, id); !bytes.Equal(got, tt.body) {
				t.Fatalf("body after reopen differs")
			}
		})
	}
}

func TestEnqueueIDsSortByArrivalAndAreNeverReused(t *testing.T) {
	ts := openTestStore(t)
	var prev ID
	for i := range 5 {
		id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), "x")
		if id <= prev {
			t.Fatalf("id %d = %q, not after %q", i, id, prev)
		}
		prev = id
		if err := ts.Delete(id); err != nil {
			t.Fatal(err)
		}
		ts.reopen(t) // the sequence must persist across opens and deletes
	}
}

func TestEnqueueRejects(t *testing.T) {
	ts := openTestStore(t)
	tests := []struct {
		name string
		env  Envelope
		body io.Reader
	}{
		{"no recipients", Envelope{Sender: "a@example.com"}, strings.NewReader("x")},
		{"empty address", envelope("a@example.com", ""), strings.NewReader("x")},
		{"body read error", envelope("a@example.com", "b@example.org"), io.MultiReader(strings.NewReader("abc"), errReader{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := ts.Enqueue(tt.env, tt.body); err == nil {
				t.Fatalf("Enqueue succeeded with id %s", id)
			}
		})
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("rejected messages were stored: %+v", st)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	path := filepath.Join(dir, "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
}

func TestClosedStore(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), "x")
	ts.Close()
	if _, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
	if _, err := ts.Get(id); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
}

func TestEnqueueNotesEightBitBody(t *testing.T) {
	ts := openTestStore(t)
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"ascii", "Subject: hi\r\n\r\nplain\r\n", false},
		{"utf-8 body", "Subject: hi\r\n\r\ncaf\xc3\xa9\r\n", true},
		{"8-bit byte past the first chunk", strings.Repeat("a", bodyChunkSize+10) + "\xff", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), tt.body)
			if got := ts.mustGet(t, id).EightBit; got != tt.want {
				t.Errorf("EightBit = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBodySeeksToAnyOffset(t *testing.T) {
	ts := openTestStore(t)
	body := make([]byte, 3*bodyChunkSize+777)
	for i := range body {
		body[i] = byte(i % 251)
	}
	id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), string(body))
	rc, err := ts.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sk := rc.(io.ReadSeeker)
	head := make([]byte, 100)
	if _, err := io.ReadFull(sk, head); err != nil {
		t.Fatal(err)
	}
	if cur, err := sk.Seek(0, io.SeekCurrent); err != nil || cur != 100 {
		t.Fatalf("Seek(0, current) = %d, %v; want 100", cur, err)
	}
	for _, off := range []int64{0, 1, bodyChunkSize - 1, bodyChunkSize, 2*bodyChunkSize + 5, int64(len(body))} {
		if _, err := sk.Seek(off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d): %v", off, err)
		}
		rest, err := io.ReadAll(sk)
		if err != nil {
			t.Fatalf("read after Seek(%d): %v", off, err)
		}
		if !bytes.Equal(rest, body[off:]) {
			t.Fatalf("after Seek(%d): got %d bytes, want %d (content differs)", off, len(rest), len(body)-int(off))
		}
	}
}

// TestBodyWriteToReusesOneBuffer: io.Copy of a stored body (what DATA and
// BDAT do) gets every byte, from any offset, through the reader's own
// buffer: no 64 KiB allocation per chunk and no copy buffer of io.Copy's.
func TestBodyWriteToReusesOneBuffer(t *testing.T) {
	ts := openTestStore(t)
	body := make([]byte, 8*bodyChunkSize+333)
	for i := range body {
		body[i] = byte(i % 253)
	}
	id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), string(body))
	for _, off := range []int64{0, 7, bodyChunkSize, 5*bodyChunkSize + 1} {
		rc, err := ts.Body(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.(io.Seeker).Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if n, err := io.Copy(&got, rc); err != nil || n != int64(len(body))-off {
			t.Fatalf("io.Copy from %d: %d bytes, %v; want %d", off, n, err, int64(len(body))-off)
		}
		rc.Close()
		if !bytes.Equal(got.Bytes(), body[off:]) {
			t.Fatalf("io.Copy from %d: content differs", off)
		}
	}
	allocated := testing.AllocsPerRun(5, func() {
		rc, err := ts.Body(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	})
	// The least of several reads: under -race, sync.Pool drops a quarter
	// of what it is given, so some reads take a fresh chunk buffer.
	perBody := uint64(math.MaxUint64)
	for range 8 {
		var ms1, ms2 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		rc, _ := ts.Body(id)
		io.Copy(io.Discard, rc)
		rc.Close()
		runtime.ReadMemStats(&ms2)
		perBody = min(perBody, ms2.TotalAlloc-ms1.TotalAlloc)
	}
	t.Logf("reading a %d-byte body: %.0f allocations, %d bytes", len(body), allocated, perBody)
	if perBody > bodyChunkSize/2 {
		t.Fatalf("reading a %d-byte body allocated %d bytes; want well under one chunk (%d)", len(body), perBody, bodyChunkSize)
	}
}

// TestHasEightBitEveryPosition: an 8-bit byte is found wherever it sits
// relative to the 32-byte steps, and 7-bit text of any length is not.
func TestHasEightBitEveryPosition(t *testing.T) {
	for n := 0; n <= 100; n++ {
		p := bytes.Repeat([]byte{0x7f}, n)
		if hasEightBit(p) {
			t.Fatalf("%d bytes of 0x7f: reported 8-bit", n)
		}
		for i := range p {
			p[i] = 0x80
			if !hasEightBit(p) {
				t.Fatalf("%d bytes with 0x80 at %d: not found", n, i)
			}
			p[i] = 0x7f
		}
	}
}
