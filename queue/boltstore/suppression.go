package boltstore

// The suppression list: addresses that failed permanently in a way that
// means they do not exist. RecordOutcome adds an address in the same
// transaction as the bounce that proved it (Outcome.Suppress); delivery
// consults the list before contacting a server.
//
//	suppressed  lower-cased address → JSON Suppression

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketSuppressed = []byte("suppressed")

// suppressionKey is the key of an address: addresses are compared without
// regard to case, as mailbox providers do in practice.
func suppressionKey(addr string) []byte { return []byte(strings.ToLower(strings.TrimSpace(addr))) }

func putSuppression(tx *bolt.Tx, e Suppression) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(bucketSuppressed)
	if err != nil {
		return err
	}
	return b.Put(suppressionKey(e.Address), v)
}

// suppressFromOutcomes adds every bounced recipient whose outcome asks for
// it to the list.
func suppressFromOutcomes(tx *bolt.Tx, r *record, c Change, now time.Time) error {
	for _, o := range c.Outcomes {
		if !o.Suppress || o.Decision != DecideBounce {
			continue
		}
		e := Suppression{Address: o.Recipient, Time: now, QueueID: r.ID}
		if a := c.AttemptFor(o.Recipient); a != nil {
			e.Route = a.Route
		}
		if o.Reply != nil {
			e.Reply = *o.Reply
		}
		if err := putSuppression(tx, e); err != nil {
			return fmt.Errorf("queue: add %s to the suppression list: %w", o.Recipient, err)
		}
	}
	return nil
}

// Suppress adds or replaces an entry of the suppression list.
func (s *Store) Suppress(e Suppression) error {
	if strings.TrimSpace(e.Address) == "" {
		return fmt.Errorf("queue: suppress: empty address")
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if err := s.write(0, func(tx *bolt.Tx, d *delta) error { return putSuppression(tx, e) }); err != nil {
		return fmt.Errorf("queue: suppress %s: %w", e.Address, err)
	}
	return nil
}

// Unsuppress removes an address from the list and reports whether it was on it.
func (s *Store) Unsuppress(addr string) (bool, error) {
	var found bool
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		found = false
		b := tx.Bucket(bucketSuppressed)
		if b == nil || b.Get(suppressionKey(addr)) == nil {
			return nil
		}
		found = true
		return b.Delete(suppressionKey(addr))
	})
	if err != nil {
		return false, fmt.Errorf("queue: unsuppress %s: %w", addr, err)
	}
	return found, nil
}

// Suppressed returns the entries for the given addresses that are on the
// list (expired or not: the caller judges age), keyed by address as given.
func (s *Store) Suppressed(addrs []string) (map[string]Suppression, error) {
	out := map[string]Suppression{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuppressed)
		if b == nil {
			return nil
		}
		for _, a := range addrs {
			v := b.Get(suppressionKey(a))
			if v == nil {
				continue
			}
			var e Suppression
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("suppression entry for %s is undecodable: %w", a, err)
			}
			out[a] = e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: suppression lookup: %w", err)
	}
	return out, nil
}

// ListSuppressed calls fn for every entry, in address order.
func (s *Store) ListSuppressed(fn func(Suppression) error) error {
	var all []Suppression
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuppressed)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var e Suppression
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("suppression entry %q is undecodable: %w", k, err)
			}
			all = append(all, e)
			return nil
		})
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
	var n int
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		n = 0
		b := tx.Bucket(bucketSuppressed)
		if b == nil {
			return nil
		}
		var old [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var e Suppression
			if json.Unmarshal(v, &e) == nil && e.Time.Before(limit) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue: purge suppression: %w", err)
	}
	return n, nil
}
