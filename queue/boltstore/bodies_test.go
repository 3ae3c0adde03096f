package boltstore

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// chunkOffset is where chunk n of id's body lies in the file: bbolt
// writes a changed page elsewhere (copy on write), so a chunk that moved
// was copied and written again.
func chunkOffset(t *testing.T, s *Store, id ID, n int) uintptr {
	t.Helper()
	var off uintptr
	err := s.view(func(tx *bolt.Tx) error {
		v := bodyChunk(tx, id, n)
		if v == nil {
			t.Fatalf("chunk %d of %s is not stored", n, id)
		}
		off = uintptr(unsafe.Pointer(unsafe.SliceData(v))) - s.db.Info().Data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// TestBodiesAreWrittenOnce is issue 13's 100 KiB finding: a body stays
// where it was written while other messages arrive and finish. Before,
// all chunks shared one bucket, bbolt keeps two to four entries in a
// leaf, and every commit that added or dropped a neighbour's body copied
// this one into new pages and wrote it again (wrote 138 KiB of pages per
// 100 KiB message at the sink; 119 KiB with a bucket per body).
func TestBodiesAreWrittenOnce(t *testing.T) {
	ts := openTestStore(t)
	body := strings.Repeat(strings.Repeat("b", 98)+"\r\n", 1024) // 100 KiB: two chunks
	first := ts.mustEnqueue(t, envelope("a@b.test", "r0@c.test"), body)
	at := [2]uintptr{chunkOffset(t, ts.Store, first, 0), chunkOffset(t, ts.Store, first, 1)}
	var others []ID
	for i := range 3 {
		others = append(others, ts.mustEnqueue(t, envelope("a@b.test", "r@c.test"), body+strings.Repeat("x", i)))
	}
	leases, err := ts.Lease(ts.clock.Now(), 10)
	if err != nil || len(leases) != 4 {
		t.Fatalf("Lease: %d leases, %v", len(leases), err)
	}
	for _, l := range leases[1:] { // the others are delivered; first waits
		a := Attempt{Time: ts.clock.Now(), Route: "sink", Recipients: l.Recipients}
		if err := ts.RecordOutcome(l, a, []Outcome{{Recipient: l.Recipients[0], Decision: DecideDelivered}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range others {
		if n := chunksStored(t, ts.Store, id); n != 0 {
			t.Fatalf("delivered %s still has %d chunks", id, n)
		}
	}
	for n, want := range at {
		if got := chunkOffset(t, ts.Store, first, n); got != want {
			t.Errorf("chunk %d of %s moved from offset %d to %d while other bodies came and went: it was written again", n, first, want, got)
		}
	}
	readBody(t, ts.Store, first, body)
}

func readBody(t *testing.T, s *Store, id ID, want string) {
	t.Helper()
	rc, err := s.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, []byte(want)) {
		t.Fatalf("body of %s: %d bytes (want %d), %v", id, len(got), len(want), err)
	}
}

// TestBodiesWrittenBeforeTheirOwnBuckets: a queue file written before
// bodies had buckets of their own keeps its chunks directly in bodies (as
// bodies of one chunk still are); they read, check and drop as before,
// beside bodies in buckets.
func TestBodiesWrittenBeforeTheirOwnBuckets(t *testing.T) {
	ts := openTestStore(t)
	long := strings.Repeat("0123456789abcdef", 9<<10) // 144 KiB: three chunks
	old := ts.mustEnqueue(t, envelope("a@b.test", "old@c.test"), long)
	oldSmall := ts.mustEnqueue(t, envelope("a@b.test", "small@c.test"), "small body\r\n")
	current := ts.mustEnqueue(t, envelope("a@b.test", "new@c.test"), long)
	// A body of one chunk is written directly in bodies (putBody), as
	// every body was before; move the long one there too, as the previous
	// version wrote it.
	err := ts.write(0, func(tx *bolt.Tx, d *delta) error {
		bodies := tx.Bucket(bucketBodies)
		if bodies.Bucket([]byte(oldSmall)) != nil || bodies.Get(chunkKey(oldSmall, 0)) == nil {
			t.Error("a body of one chunk has a bucket of its own: a page more per message")
		}
		for _, id := range []ID{old} {
			var chunks [][]byte
			bodies.Bucket([]byte(id)).ForEach(func(k, v []byte) error {
				chunks = append(chunks, append([]byte(nil), v...))
				return nil
			})
			if err := bodies.DeleteBucket([]byte(id)); err != nil {
				return err
			}
			for n, c := range chunks {
				if err := bodies.Put(chunkKey(id, uint32(n)), c); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tx, err := ts.db.Begin(false); err == nil {
		if tx.Bucket(bucketBodies).Bucket([]byte(old)) != nil || tx.Bucket(bucketBodies).Get(chunkKey(old, 2)) == nil {
			t.Fatal("the old body was not moved to the old layout")
		}
		tx.Rollback()
	}
	readBody(t, ts.Store, old, long)
	readBody(t, ts.Store, oldSmall, "small body\r\n")
	readBody(t, ts.Store, current, long)

	checkClean := func(wantChunks int) {
		t.Helper()
		ts.Close()
		rep, err := CheckFile(ts.path)
		if err != nil || !rep.OK() || rep.Messages != 3 || rep.Chunks != wantChunks {
			t.Fatalf("CheckFile: %v %+v; want OK, 3 messages, %d chunks", err, rep, wantChunks)
		}
		ts.reopen(t) // Open's checks of every leased or due record pass too
	}
	checkClean(7)

	leases, err := ts.Lease(ts.clock.Now(), 10)
	if err != nil || len(leases) != 3 {
		t.Fatalf("Lease: %d leases, %v", len(leases), err)
	}
	for _, l := range leases[:2] { // old and oldSmall
		a := Attempt{Time: ts.clock.Now(), Route: "sink", Recipients: l.Recipients}
		if err := ts.RecordOutcome(l, a, []Outcome{{Recipient: l.Recipients[0], Decision: DecideDelivered}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []ID{old, oldSmall} {
		if n := chunksStored(t, ts.Store, id); n != 0 {
			t.Errorf("delivered %s (old layout) still has %d chunks", id, n)
		}
	}
	readBody(t, ts.Store, current, long)
	checkClean(3)
}
