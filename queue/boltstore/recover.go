package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

type damagedRecord struct {
	Reason string    `json:"reason"`
	When   time.Time `json:"when"`
	Record []byte    `json:"record"` // the raw bytes as found
}

type damage struct {
	id     ID
	reason error
}

// rebuildBatch is how many records one rebuild transaction covers. bbolt
// splits nodes only at commit, so a transaction that inserts n keys into
// one node moves O(n²) bytes; bounded batches with their keys sorted keep
// a rebuild linear (issue 18). A variable so tests can cross batch bounds
// with a small queue.
var rebuildBatch = 5000

// recover runs once at Open. Every commit keeps the indexes and the counts
// in step with the records, so a store whose indexes are current needs only
// the leases a crash left in flight (the leased index) turned into
// interrupted attempts due now: work proportional to what was in flight,
// not to the queue. A check (index sizes against the stored counts) guards
// that when the file is not as a clean Close left it (clean is false); it
// walks every page of the indexes, so after a clean stop it is skipped and
// start-up touches no more of the file than the leases need. A store from
// an older version, a rebuild that was cut short, or a failed check gets
// its indexes rebuilt from the records.
func (s *Store) recover(clean bool) ([]damage, error) {
	var current bool
	var why string
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		// Bodies of submissions that never completed (pending.go).
		if _, err := removePendingBodies(tx); err != nil {
			return err
		}
		if v := tx.Bucket(bucketMeta).Get(metaIndexVersion); string(v) != indexVersion {
			why = "the indexes predate this version of mailq, or their last rebuild was interrupted"
			return nil
		}
		c, err := readCounts(tx)
		if err != nil {
			why = err.Error()
			return nil
		}
		if !clean {
			if why = checkIndexSizes(s.db, tx, c); why != "" {
				return nil
			}
		}
		current = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: open: %w", err)
	}
	if !current {
		if s.opts.OnRebuild != nil {
			s.opts.OnRebuild(RebuildProgress{Reason: why})
		}
		return s.rebuild(why)
	}
	return s.recoverLeases()
}

// checkIndexSizes compares the number of entries in each index with what
// the stored counts say it must hold; "" when they agree.
// It counts with a cursor, trimming the mapping as it goes (trim.go), so
// the walk does not leave the indexes' pages resident.
func checkIndexSizes(db *bolt.DB, tx *bolt.Tx, c storedCounts) string {
	for _, want := range []struct {
		bucket []byte
		n      int
	}{
		{bucketLeased, c.Active},
		{bucketSched, c.Queued + c.Deferred},
		{bucketLive, c.Queued + c.Active + c.Deferred + c.Held},
	} {
		got := 0
		cur := tx.Bucket(want.bucket).Cursor()
		for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			if got++; got%trimAfter == 0 {
				trimMapping(db, tx)
			}
		}
		if got != want.n {
			return fmt.Sprintf("index %s holds %d entries, the stored counts say %d", want.bucket, got, want.n)
		}
	}
	return ""
}

// recoverLeases makes what a crash left leased due again now. The attempt
// Lease wrote stays as it is: interrupted, counted.
func (s *Store) recoverLeases() ([]damage, error) {
	d := &delta{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		var ids []ID
		c := tx.Bucket(bucketLeased).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			ids = append(ids, ID(k))
		}
		now := s.now()
		for _, id := range ids {
			v := tx.Bucket(bucketMsgs).Get([]byte(id))
			if v == nil { // cannot happen: the index changes with the record
				if err := setLeased(tx, id, false); err != nil {
					return err
				}
				continue
			}
			r, err := checkRecord(tx, id, v)
			if err != nil {
				if err := setAside(tx, d, id, v, err, StatusActive, 0, now); err != nil {
					return err
				}
				continue
			}
			unlease(r, now)
			if err := save(tx, r, d); err != nil {
				return err
			}
		}
		if err := persistCounts(tx, d); err != nil {
			return err
		}
		counts, err := readCounts(tx)
		if err != nil {
			return err
		}
		s.loadCounts(counts)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: recover leases at open: %w", err)
	}
	found := d.found
	d.found, d.counts, d.damaged = nil, nil, 0 // already in the loaded counts
	s.apply(d)
	return found, nil
}

// unlease turns a lease left by a crash into recipients due at now.
func unlease(r *record, now time.Time) {
	for i := range r.Recipients {
		rc := &r.Recipients[i]
		if r.isLeased(rc.Address) && !rc.State.Done() {
			rc.State, rc.NextAttempt = Deferred, now
		}
	}
	r.Token, r.Leased = 0, nil
}

// setAside moves a record that cannot be used into the damaged bucket (its
// body chunks are left in place for an operator) and out of every index.
// status is what it was counted as ("" if it was not counted); schedAt its
// schedule key time, 0 if none.
func setAside(tx *bolt.Tx, d *delta, id ID, raw []byte, reason error, status Status, schedAt int64, now time.Time) error {
	v, err := json.Marshal(damagedRecord{Reason: reason.Error(), When: now, Record: raw})
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketDamaged).Put([]byte(id), v); err != nil {
		return err
	}
	if schedAt != 0 {
		if err := tx.Bucket(bucketSched).Delete(timeKey(schedAt, id)); err != nil {
			return err
		}
	}
	for _, b := range [][]byte{bucketMsgs, bucketLive, bucketLeased} {
		if err := tx.Bucket(b).Delete([]byte(id)); err != nil {
			return err
		}
	}
	d.move(status, "")
	d.damaged++
	d.found = append(d.found, damage{id: id, reason: reason})
	return nil
}

// dropIndexes deletes the old indexes in one transaction, as a rebuild
// starts. bbolt reads every page of a bucket it deletes (to free them),
// so that transaction maps all of the old indexes: a peak RSS of 2.1 GiB
// at 1M messages (issue 13). The pages of a shared file mapping can be
// dropped at any time (a read maps them again from the page cache), so a
// trimmer runs beside the deletion every trimEvery: the mapping holds
// what the deletion read since the last trim, not the whole indexes (a
// peak of 116 MiB at 1M). Each trim is a read transaction, so a remap at
// the commit waits for it and the range it trims is always the mapping.
func (s *Store) dropIndexes() error {
	const trimEvery = 20 * time.Millisecond
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(trimEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.trim()
			}
		}
	}()
	defer func() {
		close(stop)
		<-stopped
		s.trim()
	}()
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Delete(metaIndexVersion); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketSched, bucketLive, bucketFinished, bucketLeased} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// rebuild recreates the indexes and counts from the records, in batches of
// rebuildBatch records with each batch's keys sorted before insertion. It
// checks every record and its body on the way, setting damaged ones aside,
// and recovers leases left by a crash. index_version is written last, so a
// rebuild cut short starts again at the next Open.
func (s *Store) rebuild(why string) ([]damage, error) {
	start := time.Now()
	if err := s.dropIndexes(); err != nil {
		return nil, fmt.Errorf("queue: rebuild indexes (%s): %w", why, err)
	}
	var found []damage
	var counts storedCounts
	var after []byte
	checked := 0
	for {
		d := &delta{}
		var n int
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			n, after, err = rebuildSome(tx, d, after, s.now())
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("queue: rebuild indexes (%s): %w", why, err)
		}
		counts.add(d)
		found = append(found, d.found...)
		checked += n
		s.trim()
		if s.opts.OnRebuild != nil {
			s.opts.OnRebuild(RebuildProgress{Reason: why, Checked: checked, Elapsed: time.Since(start)})
		}
		if after == nil {
			break
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		// Counted by walking: earlier opens may have set records aside.
		counts.Damaged = 0
		c := tx.Bucket(bucketDamaged).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			counts.Damaged++
		}
		if err := writeCounts(tx, counts); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaIndexVersion, []byte(indexVersion))
	})
	if err != nil {
		return nil, fmt.Errorf("queue: rebuild indexes (%s): %w", why, err)
	}
	s.loadCounts(counts)
	// The batches' heap is garbage now; the runtime would keep it for
	// minutes (70 MiB after a rebuild of 1M messages, 37 MiB after this).
	debug.FreeOSMemory()
	if s.opts.OnRebuild != nil {
		s.opts.OnRebuild(RebuildProgress{Reason: why, Checked: checked, Elapsed: time.Since(start), Done: true})
	}
	return found, nil
}

// rebuildSome indexes up to rebuildBatch records after the key after (from
// the first if nil) and returns how many it read and the key to go on
// after, nil at the end.
func rebuildSome(tx *bolt.Tx, d *delta, after []byte, now time.Time) (int, []byte, error) {
	type kv struct{ k, v []byte }
	var bad []damage
	var badRaw [][]byte
	var rewrite []*record
	var live, finished, sched []kv
	c := tx.Bucket(bucketMsgs).Cursor()
	var k, v []byte
	if after == nil {
		k, v = c.First()
	} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
		k, v = c.Next()
	}
	n := 0
	for ; k != nil && n < rebuildBatch; k, v = c.Next() {
		n++
		after = append(after[:0], k...)
		id := ID(k)
		r, err := checkRecord(tx, id, v)
		if err != nil {
			bad = append(bad, damage{id: id, reason: err})
			badRaw = append(badRaw, append([]byte(nil), v...))
			continue
		}
		stale := false
		if r.Token != 0 {
			unlease(r, now)
			r.loadedToken = 0 // the leased index was emptied
			stale = true
		}
		st, next := r.status(), r.earliest()
		if st != StatusDone {
			v, err := liveValue(r)
			if err != nil {
				return 0, nil, err
			}
			live = append(live, kv{[]byte(r.ID), v})
		} else {
			finished = append(finished, kv{timeKey(r.Finished.UnixNano(), r.ID), nil})
		}
		var at int64
		if st == StatusQueued || st == StatusDeferred {
			if at = next.UnixNano(); at <= 0 {
				at = 1
			}
			sched = append(sched, kv{timeKey(at, r.ID), schedValue(st)})
		}
		d.move("", st)
		if stale || r.SchedAt != at || r.Status != st || !r.NextAttempt.Equal(next) {
			r.SchedAt, r.Status, r.NextAttempt = at, st, next
			rewrite = append(rewrite, r)
		}
	}
	if k == nil {
		after = nil
	}
	for _, idx := range []struct {
		bucket []byte
		kvs    []kv
	}{{bucketLive, live}, {bucketFinished, finished}, {bucketSched, sched}} {
		slices.SortFunc(idx.kvs, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
		b := tx.Bucket(idx.bucket)
		for _, e := range idx.kvs {
			if err := b.Put(e.k, e.v); err != nil {
				return 0, nil, err
			}
		}
	}
	for _, r := range rewrite {
		if err := putRecord(tx, r); err != nil {
			return 0, nil, err
		}
	}
	for i, b := range bad {
		// Not in any index yet and not counted: only moved.
		if err := setAside(tx, &delta{}, b.id, badRaw[i], b.reason, "", 0, now); err != nil {
			return 0, nil, err
		}
		d.found = append(d.found, b)
	}
	return n, after, nil
}

// checkRecord decodes a record and verifies its body is complete.
func checkRecord(tx *bolt.Tx, id ID, v []byte) (*record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("key %q is not a queue id", string(id))
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	r, err := decodeRecord(id, v)
	if err != nil {
		return nil, err
	}
	c := bodyBucket(tx, id).Cursor()
	var n int
	var size int64
	prefix := []byte(id)
	for k, cv := c.Seek(prefix); k != nil && len(k) == len(prefix)+4 && string(k[:len(prefix)]) == string(id); k, cv = c.Next() {
		if binary.BigEndian.Uint32(k[len(prefix):]) != uint32(n) {
			return nil, fmt.Errorf("body chunk %d missing", n)
		}
		n++
		size += int64(len(cv))
	}
	if n != r.Chunks || size != r.storedSize() {
		return nil, fmt.Errorf("body incomplete: %d chunks, %d bytes stored; record says %d chunks, %d bytes", n, size, r.Chunks, r.storedSize())
	}
	return r, nil
}
