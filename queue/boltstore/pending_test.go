package boltstore

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	bolt "go.etcd.io/bbolt"
)

// patternReader yields n bytes of a repeating pattern; after stopAt bytes
// (if > 0) it signals reached and waits for resume, or fails with failErr.
type patternReader struct {
	n, pos  int64
	stopAt  int64
	reached chan struct{}
	resume  chan struct{}
	failErr error
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.pos >= p.n {
		return 0, io.EOF
	}
	if p.stopAt > 0 && p.pos >= p.stopAt {
		if p.failErr != nil {
			return 0, p.failErr
		}
		close(p.reached)
		<-p.resume
		p.stopAt = 0
	}
	limit := p.n
	if p.stopAt > 0 {
		limit = p.stopAt
	}
	k := int(min(int64(len(b)), limit-p.pos))
	for i := range k {
		b[i] = byte('a' + (p.pos+int64(i))%26)
	}
	p.pos += int64(k)
	return k, nil
}

func pattern(n int64) []byte {
	b, _ := io.ReadAll(&patternReader{n: n})
	return b
}

// countBodyKeys counts the stored chunks and pending marks.
func countBodyKeys(t *testing.T, s *Store) (chunks, pending int) {
	t.Helper()
	err := s.view(func(tx *bolt.Tx) error {
		// Each body's bucket is a key of bodies, counted in KeyN too.
		st := tx.Bucket(bucketBodies).Stats()
		chunks = st.KeyN - (st.BucketN - 1)
		pending = tx.Bucket(bucketPending).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// A body larger than inlineBodyMax is written while it arrives and stays
// invisible until its envelope is committed with it.
func TestEnqueueStreamsLargeBody(t *testing.T) {
	ts := openTestStore(t)
	const size = 5<<20 + 12345
	src := &patternReader{n: size, stopAt: 3 << 20, reached: make(chan struct{}), resume: make(chan struct{})}
	done := make(chan error, 1)
	var id ID
	go func() {
		var err error
		id, err = ts.Enqueue(envelope("a@example.com", "b@example.org"), src)
		done <- err
	}()
	<-src.reached
	chunks, pending := countBodyKeys(t, ts.Store)
	if chunks < (2<<20)/bodyChunkSize || pending != 1 {
		t.Errorf("mid-stream: %d chunks and %d pending marks stored, want the first MiBs written and one mark", chunks, pending)
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("a message still arriving is visible: %+v", st)
	}
	close(src.resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := ts.mustGet(t, id)
	if m.Size != size {
		t.Errorf("size %d, want %d", m.Size, size)
	}
	if got := ts.body(t, id); !bytes.Equal(got, pattern(size)) {
		t.Errorf("body differs (%d bytes back)", len(got))
	}
	if _, pending := countBodyKeys(t, ts.Store); pending != 0 {
		t.Errorf("%d pending marks left after the commit", pending)
	}
	ts.reopen(t) // committed bodies are not orphans
	if got := ts.body(t, id); len(got) != size {
		t.Errorf("after reopen: %d body bytes", len(got))
	}
}

// A body whose stream fails half-way leaves nothing behind.
func TestEnqueueStreamFailureLeavesNothing(t *testing.T) {
	ts := openTestStore(t)
	src := &patternReader{n: 8 << 20, stopAt: 3 << 20, failErr: errors.New("connection reset")}
	if _, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), src); err == nil || !errors.Is(err, src.failErr) {
		t.Fatalf("Enqueue = %v, want the read error", err)
	}
	if chunks, pending := countBodyKeys(t, ts.Store); chunks != 0 || pending != 0 {
		t.Errorf("%d chunks and %d pending marks left", chunks, pending)
	}
}

// A pending body left by a crash (no record, mark still there) is removed
// at Open.
func TestOpenRemovesPendingBodies(t *testing.T) {
	ts := openTestStore(t)
	keep := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), "Subject: keep\r\n\r\nkeep\r\n")
	orphan, err := ts.beginPending([][]byte{pattern(bodyChunkSize), pattern(100)}, bodyChunkSize+100)
	if err != nil {
		t.Fatal(err)
	}
	if chunks, pending := countBodyKeys(t, ts.Store); chunks != 3 || pending != 1 {
		t.Fatalf("before reopen: %d chunks, %d pending", chunks, pending)
	}
	ts.reopen(t)
	if chunks, pending := countBodyKeys(t, ts.Store); chunks != 1 || pending != 0 {
		t.Errorf("after reopen: %d chunks, %d pending; want only the committed message's", chunks, pending)
	}
	if _, err := ts.Get(orphan); !errors.Is(err, ErrNotFound) {
		t.Errorf("orphan %s: %v", orphan, err)
	}
	if string(ts.body(t, keep)) != "Subject: keep\r\n\r\nkeep\r\n" {
		t.Errorf("committed body damaged")
	}
	// Its id is never reused.
	if id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), "x"); id <= orphan {
		t.Errorf("new id %s not after the orphan's %s", id, orphan)
	}
}

// A body reader that fails with io.ErrUnexpectedEOF (a client gone in
// the middle of DATA) fails the enqueue: it is not a short body. Found by
// FuzzSession; io.ReadFull used to hide it.
func TestEnqueueUnexpectedEOFIsAFailure(t *testing.T) {
	ts := openTestStore(t)
	for _, size := range []int64{10, 3 << 20} {
		src := io.MultiReader(&patternReader{n: size}, iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), src); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("size %d: Enqueue = %v, want io.ErrUnexpectedEOF", size, err)
		}
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("%d messages stored from failed reads", st.Live)
	}
}
