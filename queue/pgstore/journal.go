package pgstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

// journal runs Options.Journal for each change and queues the storing of
// its payloads in b, as one statement. The sequence numbers come from the
// one event_seq row, whose lock the transaction then holds to its commit:
// journaling transactions commit in sequence order, so a reader never sees
// N+1 before N.
func (s *Store) journal(b *pgx.Batch, d *delta, cs ...queue.Change) {
	if s.opts.Journal == nil {
		return
	}
	var times []int64
	var payloads [][]byte
	for _, c := range cs {
		for _, p := range s.opts.Journal(c) {
			times, payloads = append(times, c.Time.UnixNano()), append(payloads, p)
		}
	}
	if len(payloads) == 0 {
		return
	}
	b.Queue(`WITH n AS (UPDATE event_seq SET last = last + $1 RETURNING last)
		INSERT INTO events (seq, time, data)
		SELECT n.last - $1 + u.ord, u.t, u.d FROM n, unnest($2::bigint[], $3::bytea[]) WITH ORDINALITY AS u(t, d, ord)`,
		int64(len(payloads)), times, payloads)
	d.events = true
}

// EventsChanged returns a channel closed once events committed after the
// call (on this node, or on another one as NOTIFY or the poll tells).
func (s *Store) EventsChanged() <-chan struct{} { return s.events.Wait() }

// Events returns up to max events with a sequence number above after.
func (s *Store) Events(after uint64, max int) ([]queue.StoredEvent, error) {
	rows, err := s.pool.Query(s.ctx, "SELECT seq, time, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", int64(after), max)
	if err != nil {
		return nil, fmt.Errorf("queue: read events: %w", err)
	}
	var out []queue.StoredEvent
	for rows.Next() {
		var seq, t int64
		var data []byte
		if err := rows.Scan(&seq, &t, &data); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, queue.StoredEvent{Seq: uint64(seq), Time: time.Unix(0, t), Data: data})
	}
	return out, rows.Err()
}

// LastEventSeq is the newest event's sequence number ever stored (0: none).
func (s *Store) LastEventSeq() (uint64, error) {
	var last int64
	if err := s.pool.QueryRow(s.ctx, "SELECT last FROM event_seq").Scan(&last); err != nil {
		return 0, fmt.Errorf("queue: last event: %w", err)
	}
	return uint64(last), nil
}

// EventSeqBefore is the sequence number of the last event older than t.
func (s *Store) EventSeqBefore(t time.Time) (uint64, error) {
	var seq *int64
	err := s.pool.QueryRow(s.ctx, "SELECT max(seq) FROM events WHERE time < $1", max(t.UnixNano(), 0)).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("queue: find event before %v: %w", t, err)
	}
	if seq == nil {
		return 0, nil
	}
	return uint64(*seq), nil
}

// PurgeEvents drops events older than limit with a sequence number up to
// keep, and returns how many.
func (s *Store) PurgeEvents(limit time.Time, keep uint64) (int, error) {
	var n int
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		// Events are dropped from the start of the log only, as far as
		// both bounds allow (the time and the sequence rise together).
		tag, err := tx.Exec(s.ctx, `DELETE FROM events WHERE seq < coalesce(
			(SELECT min(seq) FROM events WHERE time >= $1 OR seq > $2), 9223372036854775807)`, limit.UnixNano(), int64(min(keep, 1<<62)))
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue: purge events: %w", err)
	}
	return n, nil
}

// EventCursor returns a consumer's stored position; ok false if none.
func (s *Store) EventCursor(name string) (uint64, bool, error) {
	var seq int64
	err := s.pool.QueryRow(s.ctx, "SELECT seq FROM cursors WHERE name = $1", name).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("queue: event cursor %q: %w", name, err)
	}
	return uint64(seq), true, nil
}

// SetEventCursor stores a consumer's position durably.
func (s *Store) SetEventCursor(name string, seq uint64) error {
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		_, err := tx.Exec(s.ctx, `INSERT INTO cursors (name, seq) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`, name, int64(seq))
		return err
	})
	if err != nil {
		return fmt.Errorf("queue: store event cursor %q: %w", name, err)
	}
	return nil
}
