package queue

import (
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// modify loads one message, lets fn change it and saves it, all in one
// group-committed transaction.
func (s *Store) modify(op string, id ID, fn func(r *record, d *delta) error) error {
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		r, err := load(tx, id)
		if err != nil {
			return err
		}
		if err := fn(r, d); err != nil {
			return err
		}
		return save(tx, r, d)
	})
	if err != nil {
		return fmt.Errorf("queue: %s %s: %w", op, id, err)
	}
	return nil
}

// Hold stops a message from being attempted (and from expiring) until
// Release. An attempt already in flight finishes; its outcome is recorded
// but the message is not rescheduled while held.
func (s *Store) Hold(id ID) error {
	return s.modify("hold", id, func(r *record, d *delta) error {
		if r.status() == StatusDone {
			return fmt.Errorf("message is done; nothing left to hold")
		}
		if !r.Held {
			r.Held, r.HeldAt = true, s.now()
		}
		return nil
	})
}

// Release ends a hold, adds the time held to HeldFor (it does not count
// toward the lifetime) and makes the message due now.
func (s *Store) Release(id ID) error {
	return s.modify("release", id, func(r *record, d *delta) error {
		if !r.Held {
			return nil
		}
		now := s.now()
		if held := now.Sub(r.HeldAt); held > 0 && !r.HeldAt.IsZero() {
			r.HeldFor += held
		}
		r.Held, r.HeldAt = false, time.Time{}
		r.dueNow(now)
		d.signal = true
		return nil
	})
}

// MakeDue makes a message due now; a held one stays held, a done one is
// left alone.
func (s *Store) MakeDue(id ID) error {
	return s.modify("retry", id, func(r *record, d *delta) error {
		if r.Held || r.status() == StatusDone {
			return nil
		}
		r.dueNow(s.now())
		d.signal = true
		return nil
	})
}

// SetDelayWarned records that a delay warning was queued for the message.
func (s *Store) SetDelayWarned(id ID) error {
	return s.modify("set delay-warned on", id, func(r *record, d *delta) error {
		r.DelayWarned = true
		return nil
	})
}

// Delete removes a message with its body and history; no bounce is sent.
// A lease on it is lost: its RecordOutcome returns ErrLeaseLost.
func (s *Store) Delete(id ID) error {
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		r, err := load(tx, id)
		if err != nil {
			return err
		}
		return remove(tx, r, d)
	})
	if err != nil {
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	return nil
}

// Flush makes every deferred message due now and returns how many there
// were. Held and leased messages are not in the schedule index, so they are
// untouched.
func (s *Store) Flush() (int, error) {
	var n int
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		n = 0
		now := s.now()
		var ids []ID
		c := tx.Bucket(bucketSched).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			_, id := splitTimeKey(k)
			ids = append(ids, id)
		}
		for _, id := range ids {
			r, err := load(tx, id)
			if err != nil {
				continue // undecodable: set aside at the next Open
			}
			if r.status() != StatusDeferred {
				continue
			}
			n++
			if r.SchedAt <= now.UnixNano() {
				continue // already due
			}
			r.dueNow(now)
			if err := save(tx, r, d); err != nil {
				return err
			}
		}
		d.signal = n > 0
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue: flush: %w", err)
	}
	return n, nil
}

// Purge drops done messages that finished more than Retention before now,
// oldest first, and returns how many it dropped.
func (s *Store) Purge(now time.Time) (int, error) {
	var n int
	limit := now.Add(-s.opts.Retention).UnixNano()
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		n = 0
		ids, err := idsUpTo(tx, bucketFinished, limit, math.MaxInt)
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, err := load(tx, id)
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
		return 0, fmt.Errorf("queue: purge: %w", err)
	}
	return n, nil
}
