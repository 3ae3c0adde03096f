package pgstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

// listPage is how many messages List reads per query; fn runs between
// pages, with no transaction open.
const listPage = 256

// Get returns a live or retained message with its attempts.
func (s *Store) Get(id queue.ID) (*queue.Message, error) {
	var m *queue.Message
	err := s.read(func(tx pgx.Tx) error {
		recs, err := loadMany(s.ctx, tx, []string{string(id)}, false, true)
		if err != nil {
			return err
		}
		r := recs[id]
		if r == nil {
			return fmt.Errorf("%w: %s", queue.ErrNotFound, id)
		}
		m = r.public()
		return nil
	})
	return m, err
}

// read runs fn in a read-only transaction (one consistent snapshot).
func (s *Store) read(fn func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return queue.ErrClosed
	}
	return pgx.BeginTxFunc(s.ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, fn)
}

// List calls fn for each message f selects, in id order, without attempts.
func (s *Store) List(f queue.Filter, fn func(*queue.Message) error) error {
	var cutoff int64 = 1<<63 - 1
	if f.OlderThan > 0 {
		cutoff = s.now().Add(-f.OlderThan).UnixNano()
	}
	nullSender := f.Sender == "<>"
	var after int64
	for {
		var page []*queue.Message
		err := s.read(func(tx pgx.Tx) error {
			page = page[:0]
			rows, err := tx.Query(s.ctx, `SELECT id, seq FROM messages WHERE seq > $1 AND arrival < $2
				AND (($3 = '' AND status <> 'done') OR status = $3) ORDER BY seq LIMIT $4`,
				after, cutoff, string(f.Status), listPage)
			if err != nil {
				return err
			}
			var ids []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id, &after); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil || len(ids) == 0 {
				return err
			}
			recs, err := loadMany(s.ctx, tx, ids, false, false)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if r := recs[queue.ID(id)]; r != nil {
					page = append(page, r.public())
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: list: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, m := range page {
			if !matches(f, nullSender, m) {
				continue
			}
			m.Attempts = nil
			if err := fn(m); err != nil {
				return err
			}
		}
		if len(page) < listPage {
			return nil
		}
	}
}

func matches(f queue.Filter, nullSender bool, m *queue.Message) bool {
	switch {
	case nullSender && m.Sender != "":
		return false
	case !nullSender && f.Sender != "" && !queue.MatchAddress(f.Sender, m.Sender):
		return false
	}
	if f.Recipient == "" {
		return true
	}
	for _, rc := range m.Recipients {
		if rc.State.Done() && f.Status != queue.StatusDone {
			continue
		}
		if queue.MatchAddress(f.Recipient, rc.Address) {
			return true
		}
	}
	return false
}

// Stats counts messages by status (an index-only count on the status
// index), the oldest live message's age and the outcome totals since Open.
func (s *Store) Stats() (queue.Stats, error) {
	var st queue.Stats
	err := s.read(func(tx pgx.Tx) error {
		rows, err := tx.Query(s.ctx, "SELECT status, count(*) FROM messages GROUP BY status")
		if err != nil {
			return err
		}
		for rows.Next() {
			var status string
			var n int
			if err := rows.Scan(&status, &n); err != nil {
				rows.Close()
				return err
			}
			switch queue.Status(status) {
			case queue.StatusQueued:
				st.Queued = n
			case queue.StatusActive:
				st.Active = n
			case queue.StatusDeferred:
				st.Deferred = n
			case queue.StatusHeld:
				st.Held = n
			case queue.StatusDone:
				st.Done = n
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var arrival int64
		err = tx.QueryRow(s.ctx, "SELECT arrival FROM messages WHERE status <> 'done' ORDER BY seq LIMIT 1").Scan(&arrival)
		if err == nil {
			st.OldestAge = max(s.now().Sub(time.Unix(0, arrival)), 0)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	if err != nil {
		return queue.Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	st.Live = st.Queued + st.Active + st.Deferred + st.Held
	st.DeliveredTotal = s.deliveredTotal.Load()
	st.BouncedTotal = s.bouncedTotal.Load()
	st.DeferredTotal = s.deferredTotal.Load()
	return st, nil
}
