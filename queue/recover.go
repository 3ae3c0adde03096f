package queue

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
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

// recover runs once at Open, in one transaction: it checks every record and
// its body, sets damaged ones aside in the damaged bucket (their body
// chunks are left in place for an operator), turns leases left by a crash
// into interrupted attempts due now, and rebuilds the indexes from the
// records so they cannot disagree after any crash or repair.
func (s *Store) recover() ([]damage, error) {
	var found []damage
	d := &delta{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		for _, name := range [][]byte{bucketSched, bucketLive, bucketFinished} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		now := s.now()
		msgs := tx.Bucket(bucketMsgs)
		var bad []damage
		var badRaw [][]byte
		var recovered, rewrite []*record
		err := msgs.ForEach(func(k, v []byte) error {
			id := ID(k)
			r, err := checkRecord(tx, id, v)
			if err != nil {
				bad = append(bad, damage{id: id, reason: err})
				badRaw = append(badRaw, append([]byte(nil), v...))
				return nil
			}
			if r.Token != 0 {
				recovered = append(recovered, r)
				return nil
			}
			stale, err := reindex(tx, r, d)
			if stale {
				rewrite = append(rewrite, r)
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, r := range recovered {
			// The attempt Lease wrote stays as it is: Interrupted, counted.
			for i := range r.Recipients {
				rc := &r.Recipients[i]
				if r.isLeased(rc.Address) && !rc.State.Done() {
					rc.State, rc.NextAttempt = Deferred, now
				}
			}
			r.Token, r.Leased = 0, nil
			if _, err := reindex(tx, r, d); err != nil {
				return err
			}
			rewrite = append(rewrite, r)
		}
		for _, r := range rewrite {
			if err := putRecord(tx, r); err != nil {
				return err
			}
		}
		damagedBucket := tx.Bucket(bucketDamaged)
		for i, b := range bad {
			v, err := json.Marshal(damagedRecord{Reason: b.reason.Error(), When: now, Record: badRaw[i]})
			if err != nil {
				return err
			}
			if err := damagedBucket.Put([]byte(b.id), v); err != nil {
				return err
			}
			if err := msgs.Delete([]byte(b.id)); err != nil {
				return err
			}
		}
		found = bad
		// Counted by walking: Bucket.Stats does not see this transaction's puts.
		c := damagedBucket.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			d.damaged++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: recover at open: %w", err)
	}
	s.apply(d)
	return found, nil
}

// checkRecord decodes a record and verifies its body is complete.
func checkRecord(tx *bolt.Tx, id ID, v []byte) (*record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("key %q is not a queue id", string(id))
	}
	r, err := decodeRecord(id, v)
	if err != nil {
		return nil, err
	}
	c := tx.Bucket(bucketBodies).Cursor()
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
	if n != r.Chunks || size != r.Size {
		return nil, fmt.Errorf("body incomplete: %d chunks, %d bytes stored; record says %d chunks, %d bytes", n, size, r.Chunks, r.Size)
	}
	return r, nil
}

// reindex puts a record into the indexes (which recover emptied) and counts
// its status. It reports whether the stored record's own bookkeeping
// (status, next attempt, index key) disagrees and must be rewritten.
func reindex(tx *bolt.Tx, r *record, d *delta) (stale bool, err error) {
	st, next := r.status(), r.earliest()
	if st != StatusDone {
		var arrival [8]byte
		binary.BigEndian.PutUint64(arrival[:], uint64(r.Arrival.UnixNano()))
		if err := tx.Bucket(bucketLive).Put([]byte(r.ID), arrival[:]); err != nil {
			return false, err
		}
	} else if err := tx.Bucket(bucketFinished).Put(timeKey(r.Finished.UnixNano(), r.ID), nil); err != nil {
		return false, err
	}
	var at int64
	if st == StatusQueued || st == StatusDeferred {
		if at = next.UnixNano(); at <= 0 {
			at = 1
		}
		if err := tx.Bucket(bucketSched).Put(timeKey(at, r.ID), nil); err != nil {
			return false, err
		}
	}
	d.move("", st)
	stale = r.SchedAt != at || r.Status != st || !r.NextAttempt.Equal(next)
	r.SchedAt, r.Status, r.NextAttempt, r.loaded = at, st, next, st
	return stale, nil
}
