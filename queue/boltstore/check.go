package boltstore

// CheckFile is `mailq check-store`: a read-only walk over a stopped
// daemon's store that checks bbolt's structure, then every record, index
// entry and body chunk against each other.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// maxProblems bounds how many problems a check lists (it still counts on).
const maxProblems = 1000

// CheckReport is what CheckFile found.
type CheckReport struct {
	Path                  string
	Pages                 int            // bbolt pages reachable from the root
	Messages              int            // records in msgs
	ByStatus              map[Status]int // records by status
	Chunks                int            // body chunks
	BodyBytes             int64
	SetAside              []ID     // records set aside as damaged by an earlier open
	Sched, Live, Finished int      // index entries
	Problems              []string // each names the message id when there is one
	// Unreadable is set when the file's structure stopped the check
	// before any record was read (the counts are then all zero).
	Unreadable bool
	Elapsed    time.Duration
}

// OK reports whether nothing was found wrong.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// CheckFile checks the store at path without writing to it. The error is
// for a store that cannot be checked at all (missing, locked by a running
// daemon); damage is reported in the report's Problems.
func CheckFile(path string) (rep *CheckReport, err error) {
	start := time.Now()
	rep = &CheckReport{Path: path, ByStatus: map[Status]int{}}
	defer func() {
		if rep != nil {
			rep.Elapsed = time.Since(start)
		}
	}()
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("check-store: %w", err)
	}
	if info.Size() == 0 {
		rep.Unreadable = true
		rep.problem("the file is empty (0 bytes)")
		return rep, nil
	}
	// Held for the whole check: a running daemon (which holds bbolt's
	// exclusive flock) must not write under the walk.
	unlock, err := lockShared(path)
	if err != nil {
		return nil, fmt.Errorf("check-store: %w; stop the daemon first (or check a `mailqctl backup`)", err)
	}
	defer unlock()
	problems, pages, err := walkFile(path, maxProblems)
	if err != nil {
		return nil, fmt.Errorf("check-store: read %s: %w", path, err)
	}
	rep.Pages = pages
	if len(problems) > 0 {
		// bbolt cannot safely read a tree with these; salvage can try.
		rep.Unreadable = true
		for _, p := range problems {
			rep.problem("bbolt structure: %s", p)
		}
		return rep, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("check-store: %s is locked by a running mailq; stop the daemon first (or take a `mailqctl backup` and check that)", path)
		}
		rep.Unreadable = true
		rep.problem("bbolt refuses to open it: %v", err)
		return rep, nil
	}
	defer db.Close()
	defer func() {
		if r := recover(); r != nil {
			rep.problem("reading the store failed: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			rep.problem("bbolt check: %v", e)
		}
		if !rep.OK() {
			return nil
		}
		rep.checkRecords(tx)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check-store: %w", err)
	}
	return rep, nil
}

// checkRecords walks msgs and bodies side by side (both in id order) and
// checks each record's index entries.
func (rep *CheckReport) checkRecords(tx *bolt.Tx) {
	if b := tx.Bucket(bucketFormat); b == nil {
		rep.problem("no mailq label bucket %q (written by every open since issue 17)", bucketFormat)
	}
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			rep.problem("bucket %q is missing", name)
		}
	}
	if !rep.OK() {
		return
	}
	setAside := map[ID]bool{}
	tx.Bucket(bucketDamaged).ForEach(func(k, _ []byte) error {
		setAside[ID(k)] = true
		rep.SetAside = append(rep.SetAside, ID(k))
		return nil
	})
	sched, live, finished := tx.Bucket(bucketSched), tx.Bucket(bucketLive), tx.Bucket(bucketFinished)
	bodies := newBodyCursor(tx)
	// skipChunks moves past the bodies of ids before id, reporting those
	// that belong to no record (and not to one set aside).
	skipChunks := func(id ID) {
		for o, ok := bodies.id(); ok && o < id; o, ok = bodies.id() {
			n, _ := bodies.take(rep)
			if !setAside[o] {
				rep.problem("message %s: body chunks without a record", o)
			}
			rep.Chunks += n
		}
	}
	wantSched, wantLive, wantFinished := 0, 0, 0
	tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
		id := ID(k)
		rep.Messages++
		skipChunks(id)
		n, size := 0, int64(0)
		if o, ok := bodies.id(); ok && o == id {
			n, size = bodies.take(rep)
		}
		rep.Chunks += n
		rep.BodyBytes += size
		if !validID(id) {
			rep.problem("record key %q is not a queue id", string(k))
			return nil
		}
		r, err := decodeRecord(id, v)
		if err != nil {
			rep.problem("message %s: %v", id, err)
			return nil
		}
		if n != r.Chunks || size != r.storedSize() {
			rep.problem("message %s: body incomplete: %d chunks, %d bytes stored; record says %d chunks, %d bytes", id, n, size, r.Chunks, r.storedSize())
		}
		st := r.status()
		rep.ByStatus[st]++
		if st != r.Status {
			rep.problem("message %s: stored status %q, its recipients say %q", id, r.Status, st)
		}
		if st == StatusDone {
			wantFinished++
			if finished.Get(timeKey(r.Finished.UnixNano(), id)) == nil {
				rep.problem("message %s: done but not in the finished index", id)
			}
		} else {
			wantLive++
			if live.Get([]byte(id)) == nil {
				rep.problem("message %s: %s but not in the live index", id, st)
			}
		}
		if r.SchedAt != 0 {
			wantSched++
			if st != StatusQueued && st != StatusDeferred {
				rep.problem("message %s: %s but indexed as due", id, st)
			} else if sched.Get(timeKey(r.SchedAt, id)) == nil {
				rep.problem("message %s: %s but not in the schedule index", id, st)
			}
		} else if st == StatusQueued || st == StatusDeferred {
			rep.problem("message %s: %s but not indexed as due", id, st)
		}
		return nil
	})
	skipChunks(ID("\xff"))
	rep.Sched, rep.Live, rep.Finished = bucketLen(sched), bucketLen(live), bucketLen(finished)
	msgs := tx.Bucket(bucketMsgs)
	rep.extraEntries("schedule", sched, rep.Sched, wantSched, func(k []byte) ID { _, id := splitTimeKey(k); return id }, msgs)
	rep.extraEntries("live", live, rep.Live, wantLive, func(k []byte) ID { return ID(k) }, msgs)
	rep.extraEntries("finished", finished, rep.Finished, wantFinished, func(k []byte) ID { _, id := splitTimeKey(k); return id }, msgs)
	sort.Slice(rep.SetAside, func(i, j int) bool { return rep.SetAside[i] < rep.SetAside[j] })
}

// extraEntries names the index entries beyond those the records account
// for (only searched for when the counts say there are some).
func (rep *CheckReport) extraEntries(name string, b *bolt.Bucket, have, want int, idOf func([]byte) ID, msgs *bolt.Bucket) {
	if have <= want {
		return
	}
	found := 0
	b.ForEach(func(k, _ []byte) error {
		if len(k) != idLen && len(k) != idLen+8 {
			rep.problem("%s index: key %x is malformed", name, k)
			found++
			return nil
		}
		if id := idOf(k); msgs.Get([]byte(id)) == nil {
			rep.problem("message %s: in the %s index but has no record", id, name)
			found++
		}
		return nil
	})
	if found < have-want {
		rep.problem("%s index: %d entries, the records account for %d (stale duplicates)", name, have, want)
	}
}

func bucketLen(b *bolt.Bucket) int { return b.Stats().KeyN }

// bodyCursor walks the bodies bucket one message at a time, in id order,
// whether a body is in a bucket of its own or, written before those,
// directly in bodies (bodies.go). Malformed keys are reported and skipped.
type bodyCursor struct {
	bodies *bolt.Bucket
	c      *bolt.Cursor
	k, v   []byte
}

func newBodyCursor(tx *bolt.Tx) *bodyCursor {
	b := &bodyCursor{bodies: tx.Bucket(bucketBodies)}
	b.c = b.bodies.Cursor()
	b.k, b.v = b.c.First()
	return b
}

// id is the id of the body at the cursor; false past the last.
func (b *bodyCursor) id() (ID, bool) {
	if b.k == nil {
		return "", false
	}
	return ID(b.k[:min(len(b.k), idLen)]), true
}

// take moves past the body at the cursor and returns its chunk count and
// size, reporting chunks missing from the sequence and malformed keys.
func (b *bodyCursor) take(rep *CheckReport) (n int, size int64) {
	id, _ := b.id()
	count := func(k, v []byte) {
		if len(k) != idLen+4 || ID(k[:idLen]) != id {
			rep.problem("message %s: body chunk key %x is not its id and a chunk number", id, k)
			return
		}
		if c := binary.BigEndian.Uint32(k[idLen:]); c != uint32(n) {
			rep.problem("message %s: body chunk %d missing (next stored is %d)", id, n, c)
			n = int(c)
		}
		n++
		size += int64(len(v))
	}
	for b.k != nil && ID(b.k[:min(len(b.k), idLen)]) == id {
		switch {
		case len(b.k) == idLen && b.v == nil: // the body's own bucket
			sub := b.bodies.Bucket(b.k)
			if sub == nil {
				rep.problem("message %s: body entry is neither a bucket nor a chunk", id)
				break
			}
			sub.ForEach(func(k, v []byte) error {
				if v == nil {
					rep.problem("message %s: a bucket %x inside its body's bucket", id, k)
					return nil
				}
				count(k, v)
				return nil
			})
		case len(b.k) == idLen+4 && b.v != nil:
			count(b.k, b.v)
		default:
			rep.problem("body key %x is not an id and a chunk number", b.k)
		}
		b.k, b.v = b.c.Next()
	}
	return n, size
}
