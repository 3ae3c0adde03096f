package boltstore

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Administrative operations touch many messages. Each runs as a series of
// small write requests through the group-commit writer, never as one long
// transaction: between two batches the writer serves whatever intake and
// delivery queued meanwhile, so neither waits for more than one batch
// (issue 18). A batch is sized so that it takes a few milliseconds.
const (
	// bulkBatch is how many ids of a bulk action one transaction applies.
	bulkBatch = 256
	// A Flush/MakeAllDue transaction rewrites between dueMinBatch and
	// dueBatch records, as many as the previous batch's pace says fit in
	// dueWork, and looks at no more than dueScan schedule entries. Every
	// transaction costs two fsyncs, so a batch is as large as the time
	// bound allows (profile: the rewrites are CPU, JSON mostly; the rest
	// of a flush's wall time is fsync).
	dueMinBatch = 128
	dueBatch    = 2048
	dueWork     = 10 * time.Millisecond
	dueScan     = 16384
	// purgeBatch is how many finished messages one Purge transaction drops.
	purgeBatch = 256
)

// modifyEach applies fn to each message of ids, bulkBatch ids per
// transaction, and returns one error per id (nil where it succeeded). An
// id that fails (unknown, or refused by fn) does not stop the others.
func (s *Store) modifyEach(op string, ids []ID, fn func(tx *bolt.Tx, r *record, d *delta) error) []error {
	errs := make([]error, len(ids))
	if len(ids) >= trimAfter {
		defer s.trim()
	}
	for start := 0; start < len(ids); start += bulkBatch {
		part := ids[start:min(start+bulkBatch, len(ids))]
		perr := errs[start : start+len(part)]
		err := s.write(0, func(tx *bolt.Tx, d *delta) error {
			clear(perr)
			for i, id := range part {
				r, err := load(tx, id)
				if err != nil {
					perr[i] = err
					continue
				}
				var refused error
				if err := fn(tx, r, d); err != nil {
					if _, ok := err.(refusal); !ok {
						return err // a storage error: the whole batch fails
					}
					refused = err
				}
				perr[i] = refused
			}
			return nil
		})
		for i := range perr {
			if err != nil {
				perr[i] = err
			}
			if perr[i] != nil {
				perr[i] = fmt.Errorf("queue: %s %s: %w", op, part[i], perr[i])
			}
		}
	}
	return errs
}

// refusal is an operation declining one message (not a storage error).
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// HoldEach stops each message from being attempted (and from expiring)
// until released. An attempt already in flight finishes; its outcome is
// recorded but the message is not rescheduled while held.
func (s *Store) HoldEach(ids []ID) []error {
	return s.modifyEach("hold", ids, func(tx *bolt.Tx, r *record, d *delta) error {
		if r.status() == StatusDone {
			return refusal{ErrDone}
		}
		if r.Held {
			return refusal{ErrHeld}
		}
		r.Held, r.HeldAt = true, s.now()
		return save(tx, r, d)
	})
}

// ReleaseEach ends each hold, adds the time held to HeldFor (it does not
// count toward the lifetime) and makes the message due now.
func (s *Store) ReleaseEach(ids []ID) []error {
	return s.modifyEach("release", ids, func(tx *bolt.Tx, r *record, d *delta) error {
		if !r.Held {
			return refusal{ErrNotHeld}
		}
		now := s.now()
		if held := now.Sub(r.HeldAt); held > 0 && !r.HeldAt.IsZero() {
			r.HeldFor += held
		}
		r.Held, r.HeldAt = false, time.Time{}
		r.dueNow(now)
		d.signal = true
		return save(tx, r, d)
	})
}

// MakeDueEach makes each message due now; a held one stays held (ErrHeld),
// a done one is left alone (ErrDone). The attempt it brings forward is the
// operator's: it does not advance the backoff (requestNow).
func (s *Store) MakeDueEach(ids []ID) []error {
	return s.modifyEach("retry", ids, func(tx *bolt.Tx, r *record, d *delta) error {
		if r.status() == StatusDone {
			return refusal{ErrDone}
		}
		if r.Held {
			return refusal{ErrHeld}
		}
		r.requestNow(s.now())
		d.signal = true
		return save(tx, r, d)
	})
}

// DeleteEach removes each message with its body and history; no bounce is
// sent. A lease on one is lost: its RecordOutcome returns ErrLeaseLost.
func (s *Store) DeleteEach(ids []ID) []error {
	return s.modifyEach("delete", ids, func(tx *bolt.Tx, r *record, d *delta) error {
		if err := s.journal(tx, d, Change{Kind: ChangeDeleted, Time: s.now(), Message: r.public()}); err != nil {
			return err
		}
		return remove(tx, r, d)
	})
}

// Hold is HoldEach for one message.
func (s *Store) Hold(id ID) error { return s.HoldEach([]ID{id})[0] }

// Release is ReleaseEach for one message.
func (s *Store) Release(id ID) error { return s.ReleaseEach([]ID{id})[0] }

// MakeDue is MakeDueEach for one message.
func (s *Store) MakeDue(id ID) error { return s.MakeDueEach([]ID{id})[0] }

// Delete is DeleteEach for one message.
func (s *Store) Delete(id ID) error { return s.DeleteEach([]ID{id})[0] }

// SetDelayWarned records that a delay warning was queued for the message.
func (s *Store) SetDelayWarned(id ID) error {
	return s.modifyEach("set delay-warned on", []ID{id}, func(tx *bolt.Tx, r *record, d *delta) error {
		r.DelayWarned = true
		if err := save(tx, r, d); err != nil {
			return err
		}
		return s.journal(tx, d, Change{Kind: ChangeDelayWarned, Time: s.now(), Message: r.public()})
	})[0]
}

// Flush makes every deferred message due now and returns how many deferred
// messages are due after it (those it moved and those already due). Held
// and leased messages are not in the schedule index, so they are untouched.
func (s *Store) Flush() (int, error) {
	n, err := s.makeAllDue(false)
	if err != nil {
		return n, fmt.Errorf("queue: flush: %w", err)
	}
	return n, nil
}

// MakeAllDue (retry --all) makes every message that waits for its next
// attempt due now and returns how many messages are due after it, queued
// ones included. Held and leased messages are untouched.
func (s *Store) MakeAllDue() (int, error) {
	n, err := s.makeAllDue(true)
	if err != nil {
		return n, fmt.Errorf("queue: retry all: %w", err)
	}
	return n, nil
}

// makeAllDue walks the schedule index once, in batches. Entries already due
// are only counted (the index value says queued or deferred, so no record
// is read); later ones are rewritten to be due now, which moves their index
// key in front of the walk's position, so each is touched once. Its work is
// what it changes plus a key walk, and no batch holds the writer longer
// than dueBatch record rewrites.
func (s *Store) makeAllDue(queuedToo bool) (int, error) {
	defer s.trim()
	now := s.now()
	limit := now.UnixNano()
	total := 0
	size := dueMinBatch
	var after []byte
	for {
		var n int
		var next []byte
		var took time.Duration // per record rewritten
		err := s.write(0, func(tx *bolt.Tx, d *delta) error {
			n, next, took = 0, nil, 0
			c := tx.Bucket(bucketSched).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			var move []schedEntry
			for scanned := 0; k != nil && scanned < dueScan && len(move) < size; k, v = c.Next() {
				scanned++
				next = append(next[:0], k...)
				ns, id := splitTimeKey(k)
				st := schedStatus(v)
				if st != StatusDeferred && !queuedToo {
					continue
				}
				if ns <= limit {
					n++
					continue
				}
				move = append(move, schedEntry{at: ns, id: id, status: st})
			}
			if k == nil {
				next = nil
			}
			// Their new keys (now, id) then go in id order.
			slices.SortFunc(move, func(a, b schedEntry) int { return bytes.Compare([]byte(a.id), []byte(b.id)) })
			started := time.Now()
			for _, e := range move {
				v := tx.Bucket(bucketMsgs).Get([]byte(e.id))
				if v == nil {
					continue // deleted meanwhile; its index entry went with it
				}
				r, err := decodeRecord(e.id, v)
				if err != nil {
					if err := setAside(tx, d, e.id, v, err, e.status, e.at, now); err != nil {
						return err
					}
					continue
				}
				r.requestNow(now) // an operator's flush or retry --all
				if err := save(tx, r, d); err != nil {
					return err
				}
				n++
			}
			d.signal = n > 0
			if len(move) > 0 {
				took = time.Since(started) / time.Duration(len(move))
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if took > 0 {
			// The next batch takes about dueWork at this batch's pace.
			size = max(dueMinBatch, min(dueBatch, int(dueWork/took)))
		}
		total += n
		if next == nil {
			return total, nil
		}
		after = next
	}
}

// Purge drops done messages that finished more than Retention before now,
// oldest first, purgeBatch per transaction, and returns how many it dropped.
func (s *Store) Purge(now time.Time) (int, error) {
	total := 0
	limit := now.Add(-s.opts.Retention).UnixNano()
	for {
		var n int
		var purged []ID
		err := s.write(0, func(tx *bolt.Tx, d *delta) error {
			n, purged = 0, purged[:0]
			done, err := entriesUpTo(tx, bucketFinished, limit, purgeBatch)
			if err != nil {
				return err
			}
			for _, e := range done {
				purged = append(purged, e.id)
				r, err := load(tx, e.id)
				if err != nil {
					return err
				}
				if err := remove(tx, r, d); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("queue: purge: %w", err)
		}
		if s.opts.OnPurged != nil {
			for _, id := range purged {
				s.opts.OnPurged(id)
			}
		}
		total += n
		if n < purgeBatch {
			if total >= trimAfter {
				s.trim()
			}
			return total, nil
		}
	}
}
