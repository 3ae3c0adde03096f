package pgstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

// expiredBatch bounds how many dead leases one Lease call takes back.
const expiredBatch = 64

// NextDue is the earliest next attempt of any message neither held nor
// leased (the due index's first entry), or now when a lease has expired
// (its message is due again, on any node).
func (s *Store) NextDue() (time.Time, bool) {
	var next *int64
	var expired bool
	err := s.pool.QueryRow(s.ctx, `SELECT (SELECT sched_at FROM messages WHERE sched_at IS NOT NULL ORDER BY sched_at LIMIT 1),
		EXISTS (SELECT 1 FROM messages WHERE lease_owner IS NOT NULL AND lease_expiry < now())`).Scan(&next, &expired)
	if err != nil {
		return time.Time{}, false
	}
	if expired {
		return s.now(), true
	}
	if next == nil {
		return time.Time{}, false
	}
	return time.Unix(0, *next), true
}

// Lease hands out up to max messages due at now, earliest first, in one
// short transaction: it takes back expired leases of any node (their
// attempt stays counted, interrupted), claims due messages with FOR UPDATE
// SKIP LOCKED (another node's claim in progress is skipped, not waited
// for), and for each writes the owner, the expiry (the database's now()
// plus LeaseTime), a bumped epoch (the token), the leased recipients and
// the attempt, recorded as interrupted until its outcome, all committed
// before Lease returns.
func (s *Store) Lease(now time.Time, max int) ([]queue.Lease, error) {
	if max <= 0 {
		return nil, nil
	}
	var leases []queue.Lease
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		leases = leases[:0]
		rows, err := tx.Query(s.ctx, `SELECT id FROM messages WHERE lease_owner IS NOT NULL AND lease_expiry < now()
			ORDER BY lease_expiry LIMIT $1 FOR UPDATE SKIP LOCKED`, expiredBatch)
		if err != nil {
			return err
		}
		expired, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range expired {
			if err := s.unleaseOne(tx, d, queue.ID(id)); err != nil {
				return err
			}
		}
		rows, err = tx.Query(s.ctx, `SELECT id FROM messages WHERE sched_at <= $1
			ORDER BY sched_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, now.UnixNano(), max)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		// Already locked by the claim above; this reads them.
		recs, err := loadMany(s.ctx, tx, ids, false, true)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, id := range ids {
			r := recs[queue.ID(id)]
			if r == nil {
				continue
			}
			var due []string
			operator := false
			for i := range r.Recipients {
				rc := &r.Recipients[i]
				if rc.State.Done() || rc.NextAttempt.After(now) {
					continue
				}
				rc.State = queue.Deferred
				rc.Attempts++
				if !rc.ResumeAt.IsZero() {
					rc.OperatorAttempts++
					operator = true
				}
				due = append(due, rc.Address)
			}
			if len(due) == 0 {
				// The index said due but no recipient is: re-save to fix it.
				if err := s.save(b, r); err != nil {
					return err
				}
				continue
			}
			r.Owner, r.Epoch, r.renewLease = s.opts.Node, r.Epoch+1, true
			r.Leased = due
			r.Attempts = append(r.Attempts, queue.Attempt{Time: now, Recipients: due, Interrupted: true, Operator: operator})
			if err := s.save(b, r); err != nil {
				return err
			}
			leases = append(leases, queue.Lease{
				Message:      r.public(),
				Recipients:   append([]string(nil), due...),
				AttemptIndex: len(r.Attempts) - 1,
				Token:        r.Epoch,
			})
		}
		d.queueNotify(b)
		return send(s.ctx, tx, b)
	})
	if err != nil {
		return nil, fmt.Errorf("queue: lease: %w", err)
	}
	return leases, nil
}

// RecordOutcome completes a lease (RecordAttempts with one attempt).
func (s *Store) RecordOutcome(l queue.Lease, a queue.Attempt, outcomes []queue.Outcome) error {
	return s.RecordAttempts(l, []queue.Attempt{a}, outcomes)
}

// RecordAttempts completes a lease: the attempt records replace the one
// Lease wrote, each recipient with an outcome moves on, leased recipients
// without one become due again now. It commits only if the message is
// still leased under this token (epoch): a node whose lease expired and
// was taken over gets ErrLeaseLost and changes nothing.
func (s *Store) RecordAttempts(l queue.Lease, attempts []queue.Attempt, outcomes []queue.Outcome) error {
	if len(attempts) == 0 {
		return fmt.Errorf("queue: record outcome: no attempt record given")
	}
	if l.Message == nil {
		return fmt.Errorf("queue: record outcome: lease has no message")
	}
	id := l.Message.ID
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		r, err := load(s.ctx, tx, id, true)
		if errors.Is(err, queue.ErrNotFound) {
			return queue.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if r.Owner == "" || r.Epoch != l.Token {
			return queue.ErrLeaseLost
		}
		now := s.now()
		done, t, err := queue.ApplyOutcomes(&r.Message, r.Leased, l.AttemptIndex, attempts, outcomes, now)
		if err != nil {
			return err
		}
		r.attemptsFrom = l.AttemptIndex
		d.delivered += t.Delivered
		d.bounced += t.Bounced
		d.deferred += t.Deferred
		d.due = d.due || t.Due
		r.Owner, r.Leased = "", nil
		if r.status() == queue.StatusDone {
			r.Finished = now
		}
		b := &pgx.Batch{}
		warned := l.MarkDelayWarned && !r.DelayWarned
		if warned {
			r.DelayWarned = true
		}
		if err := s.save(b, r); err != nil {
			return err
		}
		if warned {
			s.journal(b, d, queue.Change{Kind: queue.ChangeDelayWarned, Time: now, Message: r.public()})
		}
		c := queue.Change{Kind: queue.ChangeOutcome, Time: now, Message: r.public(), Attempts: done, Outcomes: outcomes}
		suppressFromOutcomes(b, r, c, now)
		s.journal(b, d, c)
		d.queueNotify(b)
		return send(s.ctx, tx, b)
	})
	if errors.Is(err, queue.ErrLeaseLost) {
		return fmt.Errorf("queue: record outcome for %s: %w", id, queue.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("queue: record outcome: %w", err)
	}
	return nil
}
