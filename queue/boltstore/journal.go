package boltstore

// The journal: every change an application may want to hear about (an
// arrival, a recipient outcome, a delay warning, an operator delete) is
// handed to Options.Journal inside the very transaction that makes it, and
// what the journal returns is stored in the events bucket in that same
// transaction. So an event exists if and only if its change committed: a
// crash can neither lose an event nor report a change that did not happen.
//
//	events   uint64 seq → uint64 time ns ‖ payload (opaque to the queue)
//	cursors  name → uint64 seq (how far a consumer, e.g. a webhook, got)
//
// Both buckets are created by their first write; readers treat a missing
// one as empty, so a store from before the journal opens unchanged.

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEvents  = []byte("events")
	bucketCursors = []byte("cursors")
)

// journal runs Options.Journal for c and stores what it returns, in tx.
func (s *Store) journal(tx *bolt.Tx, d *delta, c Change) error {
	if s.opts.Journal == nil {
		return nil
	}
	payloads := s.opts.Journal(c)
	if len(payloads) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketEvents)
	if err != nil {
		return err
	}
	for _, p := range payloads {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v := make([]byte, 8+len(p))
		binary.BigEndian.PutUint64(v, uint64(c.Time.UnixNano()))
		copy(v[8:], p)
		if err := b.Put(seqKey(seq), v); err != nil {
			return fmt.Errorf("queue: store event: %w", err)
		}
	}
	d.events = true
	return nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// EventsChanged returns a channel closed once events committed after the
// call; call it again for the next ones.
func (s *Store) EventsChanged() <-chan struct{} { return s.events.Wait() }

// Events returns up to max events with a sequence number above after, in
// order.
func (s *Store) Events(after uint64, max int) ([]StoredEvent, error) {
	var out []StoredEvent
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			if len(k) != 8 || len(v) < 8 {
				continue
			}
			out = append(out, StoredEvent{
				Seq:  binary.BigEndian.Uint64(k),
				Time: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))),
				Data: append([]byte(nil), v[8:]...),
			})
		}
		return nil
	})
	return out, err
}

// LastEventSeq is the sequence number of the newest event ever stored (0
// when none), even if it has been purged since.
func (s *Store) LastEventSeq() (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEvents); b != nil {
			seq = b.Sequence()
		}
		return nil
	})
	return seq, err
}

// EventSeqBefore returns the sequence number of the last event older than t,
// so that Events(EventSeqBefore(t), …) starts at t. Event times rise with
// their sequence (both follow commit order), so the log is searched in
// order.
func (s *Store) EventSeqBefore(t time.Time) (uint64, error) {
	var seq uint64
	limit := uint64(max(t.UnixNano(), 0))
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) < 8 {
				continue
			}
			if binary.BigEndian.Uint64(v[:8]) >= limit {
				break
			}
			seq = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return seq, err
}

// PurgeEvents drops events whose change happened before limit, but never
// one after keep (the lowest cursor of a consumer still needing them), and
// returns how many it dropped.
func (s *Store) PurgeEvents(limit time.Time, keep uint64) (int, error) {
	var n int
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		n = 0
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			if len(v) >= 8 && (int64(binary.BigEndian.Uint64(v[:8])) >= limit.UnixNano() || binary.BigEndian.Uint64(k) > keep) {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue: purge events: %w", err)
	}
	return n, nil
}

// EventCursor returns the position a consumer stored with SetEventCursor;
// ok is false when it never stored one.
func (s *Store) EventCursor(name string) (seq uint64, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(name)); len(v) == 8 {
			seq, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return seq, ok, err
}

// SetEventCursor stores a consumer's position durably (group-committed).
func (s *Store) SetEventCursor(name string, seq uint64) error {
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		b, err := tx.CreateBucketIfNotExists(bucketCursors)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("queue: store event cursor %q: %w", name, err)
	}
	return nil
}
