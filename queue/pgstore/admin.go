package pgstore

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

const (
	bulkBatch  = 256 // ids of a bulk action per transaction
	dueBatch   = 512 // messages Flush/MakeAllDue rewrites per transaction
	purgeBatch = 256 // done messages Purge drops per transaction
)

// refusal is an operation declining one message (not a storage error).
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// modifyEach applies fn to each message of ids, bulkBatch per transaction
// (locked in id order, so two bulk actions cannot deadlock), and returns
// one error per id.
func (s *Store) modifyEach(op string, ids []queue.ID, attempts bool, fn func(b *pgx.Batch, tx pgx.Tx, r *record, d *delta) error) []error {
	errs := make([]error, len(ids))
	for start := 0; start < len(ids); start += bulkBatch {
		part := ids[start:min(start+bulkBatch, len(ids))]
		perr := errs[start : start+len(part)]
		err := s.tx(func(tx pgx.Tx, d *delta) error {
			clear(perr)
			keys := make([]string, len(part))
			for i, id := range part {
				keys[i] = string(id)
			}
			recs, err := loadMany(s.ctx, tx, keys, true, attempts)
			if err != nil {
				return err
			}
			b := &pgx.Batch{}
			for i, id := range part {
				r := recs[id]
				if r == nil {
					perr[i] = fmt.Errorf("%w: %s", queue.ErrNotFound, id)
					continue
				}
				if err := fn(b, tx, r, d); err != nil {
					if _, ok := err.(refusal); !ok {
						return err
					}
					perr[i] = err
				}
			}
			return send(s.ctx, tx, b)
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

// HoldEach stops each message from being attempted until released.
func (s *Store) HoldEach(ids []queue.ID) []error {
	return s.modifyEach("hold", ids, false, func(b *pgx.Batch, tx pgx.Tx, r *record, d *delta) error {
		if r.status() == queue.StatusDone {
			return refusal{queue.ErrDone}
		}
		if r.Held {
			return refusal{queue.ErrHeld}
		}
		r.Held, r.HeldAt = true, s.now()
		return s.save(b, r)
	})
}

// ReleaseEach ends each hold (the time held extends the lifetime) and
// makes the message due now.
func (s *Store) ReleaseEach(ids []queue.ID) []error {
	return s.modifyEach("release", ids, false, func(b *pgx.Batch, tx pgx.Tx, r *record, d *delta) error {
		if !r.Held {
			return refusal{queue.ErrNotHeld}
		}
		now := s.now()
		if held := now.Sub(r.HeldAt); held > 0 && !r.HeldAt.IsZero() {
			r.HeldFor += held
		}
		r.Held, r.HeldAt = false, time.Time{}
		r.dueNow(now)
		d.due = true
		return s.save(b, r)
	})
}

// MakeDueEach makes each message due now (an operator's attempt: it does
// not advance the backoff); held ones stay held (ErrHeld), done ones done.
func (s *Store) MakeDueEach(ids []queue.ID) []error {
	return s.modifyEach("retry", ids, false, func(b *pgx.Batch, tx pgx.Tx, r *record, d *delta) error {
		if r.status() == queue.StatusDone {
			return refusal{queue.ErrDone}
		}
		if r.Held {
			return refusal{queue.ErrHeld}
		}
		r.requestNow(s.now())
		d.due = true
		return s.save(b, r)
	})
}

// DeleteEach removes each message with its body and history; a lease on
// one is lost (its RecordOutcome returns ErrLeaseLost).
func (s *Store) DeleteEach(ids []queue.ID) []error {
	return s.modifyEach("delete", ids, true, func(b *pgx.Batch, tx pgx.Tx, r *record, d *delta) error {
		s.journal(b, d, queue.Change{Kind: queue.ChangeDeleted, Time: s.now(), Message: r.public()})
		remove(b, r.ID)
		return nil
	})
}

func (s *Store) Hold(id queue.ID) error    { return s.HoldEach([]queue.ID{id})[0] }
func (s *Store) Release(id queue.ID) error { return s.ReleaseEach([]queue.ID{id})[0] }
func (s *Store) MakeDue(id queue.ID) error { return s.MakeDueEach([]queue.ID{id})[0] }
func (s *Store) Delete(id queue.ID) error  { return s.DeleteEach([]queue.ID{id})[0] }

// SetDelayWarned records that a delay warning was queued.
func (s *Store) SetDelayWarned(id queue.ID) error {
	return s.modifyEach("set delay-warned on", []queue.ID{id}, true, func(b *pgx.Batch, tx pgx.Tx, r *record, d *delta) error {
		r.DelayWarned = true
		if err := s.save(b, r); err != nil {
			return err
		}
		s.journal(b, d, queue.Change{Kind: queue.ChangeDelayWarned, Time: s.now(), Message: r.public()})
		return nil
	})[0]
}

// DeleteRecipients removes the recipients still to do matching pattern
// (queue.MatchAddress); none left deletes the message. In-flight ones
// cannot be removed (ErrInFlight).
func (s *Store) DeleteRecipients(id queue.ID, pattern string) ([]string, error) {
	var removed []string
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		removed = removed[:0]
		r, err := load(s.ctx, tx, id, false)
		if err != nil {
			return err
		}
		kept := r.Recipients[:0:0]
		for _, rc := range r.Recipients {
			if rc.State.Done() || !queue.MatchAddress(pattern, rc.Address) {
				kept = append(kept, rc)
				continue
			}
			if r.isLeased(rc.Address) {
				return fmt.Errorf("%w: %s", queue.ErrInFlight, rc.Address)
			}
			removed = append(removed, rc.Address)
		}
		if len(removed) == 0 {
			return queue.ErrNoRecipient
		}
		b := &pgx.Batch{}
		if len(kept) == 0 {
			remove(b, r.ID)
			return send(s.ctx, tx, b)
		}
		r.Recipients, r.rewriteRcpts = kept, true
		if r.status() == queue.StatusDone && r.Finished.IsZero() {
			r.Finished = s.now()
		}
		if err := s.save(b, r); err != nil {
			return err
		}
		return send(s.ctx, tx, b)
	})
	if err != nil {
		return nil, fmt.Errorf("queue: delete recipients %s of %s: %w", pattern, id, err)
	}
	return removed, nil
}

// Flush makes every deferred message due now and returns how many deferred
// messages are due after it.
func (s *Store) Flush() (int, error) {
	n, err := s.makeAllDue([]string{string(queue.StatusDeferred)})
	if err != nil {
		return n, fmt.Errorf("queue: flush: %w", err)
	}
	return n, nil
}

// MakeAllDue (retry --all) makes every waiting message due now and returns
// how many are due after it, queued ones included.
func (s *Store) MakeAllDue() (int, error) {
	n, err := s.makeAllDue([]string{string(queue.StatusDeferred), string(queue.StatusQueued)})
	if err != nil {
		return n, fmt.Errorf("queue: retry all: %w", err)
	}
	return n, nil
}

// makeAllDue rewrites the scheduled messages of the given statuses that are
// not yet due, dueBatch per transaction in id order, then counts those due.
func (s *Store) makeAllDue(statuses []string) (int, error) {
	now := s.now()
	after := ""
	for {
		var last string
		err := s.tx(func(tx pgx.Tx, d *delta) error {
			last = ""
			rows, err := tx.Query(s.ctx, `SELECT id FROM messages WHERE sched_at > $1 AND status = ANY($2) AND id > $3
				ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED`, now.UnixNano(), statuses, after, dueBatch)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(ids) == 0 {
				return err
			}
			last = ids[len(ids)-1]
			recs, err := loadMany(s.ctx, tx, ids, false, false)
			if err != nil {
				return err
			}
			b := &pgx.Batch{}
			for _, r := range recs {
				r.requestNow(now)
				if err := s.save(b, r); err != nil {
					return err
				}
			}
			d.due = true
			return send(s.ctx, tx, b)
		})
		if err != nil {
			return 0, err
		}
		if last == "" {
			break
		}
		after = last
	}
	var n int
	err := s.pool.QueryRow(s.ctx, "SELECT count(*) FROM messages WHERE sched_at <= $1 AND status = ANY($2)", now.UnixNano(), statuses).Scan(&n)
	return n, err
}

// Purge drops done messages that finished more than Retention before now,
// purgeBatch per transaction, and returns how many.
func (s *Store) Purge(now time.Time) (int, error) {
	total := 0
	limit := now.Add(-s.opts.Retention).UnixNano()
	for {
		var purged []string
		err := s.tx(func(tx pgx.Tx, d *delta) error {
			rows, err := tx.Query(s.ctx, `SELECT id FROM messages WHERE finished < $1 AND status = 'done'
				ORDER BY finished LIMIT $2 FOR UPDATE SKIP LOCKED`, limit, purgeBatch)
			if err != nil {
				return err
			}
			if purged, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
			b := &pgx.Batch{}
			for _, id := range purged {
				remove(b, queue.ID(id))
			}
			return send(s.ctx, tx, b)
		})
		if err != nil {
			return total, fmt.Errorf("queue: purge: %w", err)
		}
		if s.opts.OnPurged != nil {
			for _, id := range purged {
				s.opts.OnPurged(queue.ID(id))
			}
		}
		total += len(purged)
		if len(purged) < purgeBatch {
			// Bodies whose upload was cut off by a node that never came back.
			if err := s.dropDeadPending(s.ctx, false); err != nil {
				return total, fmt.Errorf("queue: purge: %w", err)
			}
			return total, nil
		}
	}
}
