package pgstore_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
	"mailq/queue/pgstore"
)

// sizedReader yields n bytes of 'x', and notes the peak heap in use every
// few MiB, while the store consumes it.
type sizedReader struct {
	left, read int64
	peakHeap   uint64
	fail       error // returned instead of io.EOF
	onRead     func()
}

func (r *sizedReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		if r.fail != nil {
			return 0, r.fail
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.left))
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.left -= int64(n)
	before := r.read
	r.read += int64(n)
	if r.read>>22 != before>>22 { // every 4 MiB
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.peakHeap = max(r.peakHeap, ms.HeapInuse)
		if r.onRead != nil {
			r.onRead()
		}
	}
	return n, nil
}

func countRows(t *testing.T, dsn, table string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A 32 MiB body streams through: the heap stays far below the body's
// size, and no transaction stays open while the client sends (the store
// answers other calls meanwhile, and other connections see no message).
func TestLargeBodyStreamsInBoundedMemory(t *testing.T) {
	dsn := migratedDatabase(t)
	s := openNode(t, dsn, "a", queue.Options{}, time.Minute)
	defer s.Close()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	const size = 32 << 20
	body := &sizedReader{left: size}
	body.onRead = func() {
		if st, err := s.Stats(); err != nil || st.Live != 0 {
			t.Errorf("during the upload: stats %+v, %v (want nothing visible)", st, err)
		}
	}
	id, err := s.Enqueue(envelope("r@example.org"), body)
	if err != nil {
		t.Fatal(err)
	}
	if grew := int64(body.peakHeap) - int64(base.HeapInuse); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB while storing a %d MiB body", grew>>20, size>>20)
	}
	m, err := s.Get(id)
	if err != nil || m.Size != size {
		t.Fatalf("Get = %+v, %v", m, err)
	}
	rc, err := s.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != size {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	if got := countRows(t, dsn, "pending_bodies"); got != 0 {
		t.Errorf("%d pending bodies left after the commit", got)
	}
}

// A large body whose client goes away leaves no chunk behind; one cut off
// by a crash is dropped when its node starts again.
func TestCutOffBodiesLeaveNothing(t *testing.T) {
	dsn := migratedDatabase(t)
	s := openNode(t, dsn, "a", queue.Options{}, time.Minute)
	_, err := s.Enqueue(envelope("r@example.org"), &sizedReader{left: 3 << 20, fail: io.ErrUnexpectedEOF})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Enqueue of a cut-off body: %v", err)
	}
	if n := countRows(t, dsn, "body_chunks"); n != 0 {
		t.Errorf("%d chunks left by a failed enqueue", n)
	}
	// A "crash" mid-upload: the reader blocks after some chunks until the
	// store is abandoned and the node restarts.
	stall, stalled := make(chan struct{}), make(chan struct{})
	body := &sizedReader{left: 8 << 20}
	body.onRead = func() {
		body.onRead = nil
		close(stalled)
		<-stall
	}
	done := make(chan error, 1)
	go func() { _, err := s.Enqueue(envelope("r@example.org"), body); done <- err }()
	<-stalled
	if n := countRows(t, dsn, "body_chunks"); n == 0 {
		t.Fatal("no chunk written before the stall")
	}
	pgstore.DropNodeLock(s)                                   // the old process "dies": its session ends
	s2 := openNode(t, dsn, "a", queue.Options{}, time.Minute) // the same node, restarted
	defer s2.Close()
	if n := countRows(t, dsn, "body_chunks"); n != 0 {
		t.Errorf("%d chunks of a cut-off upload survived the node's restart", n)
	}
	// The old process (here still running) must not commit a message
	// whose chunks were dropped.
	close(stall)
	if err := <-done; err == nil {
		t.Error("the cut-off upload committed a message after its chunks were dropped")
	}
	s.Close()
	if n := countRows(t, dsn, "body_chunks"); n != 0 {
		t.Errorf("%d chunks left behind", n)
	}
	if st, _ := s2.Stats(); st.Live != 0 {
		t.Errorf("stats after the cut-off upload: %+v", st)
	}
}
