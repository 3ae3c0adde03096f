package pgstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

// suppressionKey: addresses are compared without regard to case.
func suppressionKey(addr string) string { return strings.ToLower(strings.TrimSpace(addr)) }

func putSuppression(b *pgx.Batch, e queue.Suppression) {
	v, _ := json.Marshal(e) // plain strings and times: cannot fail
	b.Queue(`INSERT INTO suppressed (address, time, data) VALUES ($1, $2, $3)
		ON CONFLICT (address) DO UPDATE SET time = excluded.time, data = excluded.data`,
		suppressionKey(e.Address), e.Time.UnixNano(), v)
}

// suppressFromOutcomes adds each bounced recipient whose outcome asks for
// it, in the outcome's transaction.
func suppressFromOutcomes(b *pgx.Batch, r *record, c queue.Change, now time.Time) {
	for _, o := range c.Outcomes {
		if !o.Suppress || o.Decision != queue.DecideBounce {
			continue
		}
		e := queue.Suppression{Address: o.Recipient, Time: now, QueueID: r.ID}
		if a := c.AttemptFor(o.Recipient); a != nil {
			e.Route = a.Route
		}
		if o.Reply != nil {
			e.Reply = *o.Reply
		}
		putSuppression(b, e)
	}
}

// Suppress adds or replaces an entry of the suppression list.
func (s *Store) Suppress(e queue.Suppression) error {
	if strings.TrimSpace(e.Address) == "" {
		return fmt.Errorf("queue: suppress: empty address")
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		b := &pgx.Batch{}
		putSuppression(b, e)
		return send(s.ctx, tx, b)
	})
	if err != nil {
		return fmt.Errorf("queue: suppress %s: %w", e.Address, err)
	}
	return nil
}

// Unsuppress removes an address and reports whether it was listed.
func (s *Store) Unsuppress(addr string) (bool, error) {
	tag, err := s.pool.Exec(s.ctx, "DELETE FROM suppressed WHERE address = $1", suppressionKey(addr))
	if err != nil {
		return false, fmt.Errorf("queue: unsuppress %s: %w", addr, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Suppressed returns the listed entries among addrs, keyed as given.
func (s *Store) Suppressed(addrs []string) (map[string]queue.Suppression, error) {
	out := map[string]queue.Suppression{}
	if len(addrs) == 0 {
		return out, nil
	}
	keys := make([]string, len(addrs))
	for i, a := range addrs {
		keys[i] = suppressionKey(a)
	}
	rows, err := s.pool.Query(s.ctx, "SELECT address, data FROM suppressed WHERE address = ANY($1)", keys)
	if err != nil {
		return nil, fmt.Errorf("queue: suppression lookup: %w", err)
	}
	found := map[string]queue.Suppression{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, err
		}
		var e queue.Suppression
		if err := json.Unmarshal(v, &e); err != nil {
			rows.Close()
			return nil, fmt.Errorf("queue: suppression entry for %s is undecodable: %w", k, err)
		}
		found[k] = e
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, a := range addrs {
		if e, ok := found[keys[i]]; ok {
			out[a] = e
		}
	}
	return out, nil
}

// ListSuppressed calls fn for every entry, in address order.
func (s *Store) ListSuppressed(fn func(queue.Suppression) error) error {
	rows, err := s.pool.Query(s.ctx, "SELECT data FROM suppressed ORDER BY address")
	if err != nil {
		return fmt.Errorf("queue: list suppression: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (queue.Suppression, error) {
		var v []byte
		var e queue.Suppression
		if err := row.Scan(&v); err != nil {
			return e, err
		}
		return e, json.Unmarshal(v, &e)
	})
	if err != nil {
		return fmt.Errorf("queue: list suppression: %w", err)
	}
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// PurgeSuppressed drops entries added before limit and returns how many.
func (s *Store) PurgeSuppressed(limit time.Time) (int, error) {
	tag, err := s.pool.Exec(s.ctx, "DELETE FROM suppressed WHERE time < $1", limit.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("queue: purge suppression: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
