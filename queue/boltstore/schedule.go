package boltstore

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"mailq/queue"
)

// NextDue returns the earliest next attempt of any message that is neither
// held nor leased: the first key of the schedule index, O(log n).
func (s *Store) NextDue() (time.Time, bool) {
	var t time.Time
	var ok bool
	_ = s.view(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketSched).Cursor().First()
		if k != nil {
			ns, _ := splitTimeKey(k)
			t, ok = time.Unix(0, ns), true
		}
		return nil
	})
	return t, ok
}

// Lease hands out up to max messages due at now, earliest first. For each it
// marks the due recipients in flight, counts the attempt and records it as
// interrupted before returning, all in one committed transaction: should the
// process die during delivery, the attempt shows as failed, never as done.
func (s *Store) Lease(now time.Time, max int) ([]Lease, error) {
	if max <= 0 {
		return nil, nil
	}
	var leases []Lease
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		leases = leases[:0]
		due, err := entriesUpTo(tx, bucketSched, now.UnixNano()+1, max)
		if err != nil {
			return err
		}
		for _, e := range due {
			v := tx.Bucket(bucketMsgs).Get([]byte(e.id))
			r, err := checkRecord(tx, e.id, v)
			if err != nil {
				// Undecodable or its body incomplete: set it aside so the
				// others still go out and an operator can see it.
				if err := setAside(tx, d, e.id, v, err, e.status, e.at, now); err != nil {
					return err
				}
				continue
			}
			var due []string
			operator := false
			for i := range r.Recipients {
				rc := &r.Recipients[i]
				if rc.State.Done() || rc.NextAttempt.After(now) {
					continue
				}
				rc.State = Deferred
				rc.Attempts++
				if !rc.ResumeAt.IsZero() {
					rc.OperatorAttempts++
					operator = true
				}
				due = append(due, rc.Address)
			}
			if len(due) == 0 {
				// Index said due but no recipient is: re-save to fix the index.
				if err := save(tx, r, d); err != nil {
					return err
				}
				continue
			}
			r.Token = s.nextToken.Add(1)
			r.Leased = due
			r.Attempts = append(r.Attempts, Attempt{Time: now, Recipients: due, Interrupted: true, Operator: operator})
			if err := save(tx, r, d); err != nil {
				return err
			}
			leases = append(leases, Lease{
				Message:      r.public(),
				Recipients:   append([]string(nil), due...),
				AttemptIndex: len(r.Attempts) - 1,
				Token:        r.Token,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: lease: %w", err)
	}
	return leases, nil
}

// RecordOutcome completes a lease: the attempt record replaces the one Lease
// wrote, each recipient with an outcome moves on, and leased recipients
// without one become due again now. A token that is no longer current
// (message deleted, or lease recovered after a restart) gives ErrLeaseLost.
func (s *Store) RecordOutcome(l Lease, a Attempt, outcomes []Outcome) error {
	return s.RecordAttempts(l, []Attempt{a}, outcomes)
}

// RecordAttempts is RecordOutcome for a lease that became several attempts
// (one per route and connection): they replace, in order, the one record
// Lease wrote. At least one attempt is required.
func (s *Store) RecordAttempts(l Lease, attempts []Attempt, outcomes []Outcome) error {
	if len(attempts) == 0 {
		return fmt.Errorf("queue: record outcome: no attempt record given")
	}
	if l.Message == nil {
		return fmt.Errorf("queue: record outcome: lease has no message")
	}
	id := l.Message.ID
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		v := tx.Bucket(bucketMsgs).Get([]byte(id))
		if v == nil {
			return ErrLeaseLost
		}
		r, err := decodeRecord(id, v)
		if err != nil {
			return fmt.Errorf("message %s: %v", id, err)
		}
		if r.Token == 0 || r.Token != l.Token {
			return ErrLeaseLost
		}
		now := s.now()
		done, t, err := queue.ApplyOutcomes(&r.Message, r.Leased, l.AttemptIndex, attempts, outcomes, now)
		if err != nil {
			return err
		}
		d.delivered += t.Delivered
		d.bounced += t.Bounced
		d.deferred += t.Deferred
		d.signal = d.signal || t.Due
		r.Token, r.Leased = 0, nil
		if r.status() == StatusDone {
			r.Finished = now
		}
		if l.MarkDelayWarned && !r.DelayWarned {
			r.DelayWarned = true
			if err := s.journal(tx, d, Change{Kind: ChangeDelayWarned, Time: now, Message: r.public()}); err != nil {
				return err
			}
		}
		if err := save(tx, r, d); err != nil {
			return err
		}
		c := Change{Kind: ChangeOutcome, Time: now, Message: r.public(), Attempts: done, Outcomes: outcomes}
		if err := suppressFromOutcomes(tx, r, c, now); err != nil {
			return err
		}
		return s.journal(tx, d, c)
	})
	if errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("queue: record outcome for %s: %w", id, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("queue: record outcome: %w", err)
	}
	return nil
}

// schedEntry is one entry of a time-keyed index; status only for sched.
type schedEntry struct {
	at     int64
	id     ID
	status Status
}

// entriesUpTo walks a time-keyed index (sched or finished) from its start
// and returns up to max entries whose time is before limit (ns), earliest
// first. Entries whose message no longer exists are index debris and are
// deleted on the way.
func entriesUpTo(tx *bolt.Tx, bucket []byte, limit int64, max int) ([]schedEntry, error) {
	var due []schedEntry
	var stale [][]byte
	idx := tx.Bucket(bucket)
	c := idx.Cursor()
	for k, v := c.First(); k != nil && len(due) < max; k, v = c.Next() {
		ns, id := splitTimeKey(k)
		if ns >= limit {
			break
		}
		if tx.Bucket(bucketMsgs).Get([]byte(id)) == nil {
			stale = append(stale, append([]byte(nil), k...))
			continue
		}
		due = append(due, schedEntry{at: ns, id: id, status: schedStatus(v)})
	}
	for _, k := range stale {
		if err := idx.Delete(k); err != nil {
			return nil, err
		}
	}
	return due, nil
}
