package boltstore

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// indexVersion names the way the indexes are kept. A store without it (made
// before the indexes were kept by every commit, or whose rebuild was cut
// short) has its indexes rebuilt once at Open.
const indexVersion = "3" // 3: the live index holds each message's listing

var (
	metaIndexVersion = []byte("index_version")
	metaCounts       = []byte("counts")
)

// storedCounts are the message counts by status, kept in the meta bucket
// and changed in the same transaction as the records they count, so Open
// reads them instead of walking the queue.
type storedCounts struct {
	Queued   int `json:"queued"`
	Active   int `json:"active"`
	Deferred int `json:"deferred"`
	Held     int `json:"held"`
	Done     int `json:"done"`
	Damaged  int `json:"damaged"`
}

func (c *storedCounts) field(st Status) *int {
	switch st {
	case StatusQueued:
		return &c.Queued
	case StatusActive:
		return &c.Active
	case StatusDeferred:
		return &c.Deferred
	case StatusHeld:
		return &c.Held
	case StatusDone:
		return &c.Done
	}
	return nil
}

func (c *storedCounts) add(d *delta) {
	for st, n := range d.counts {
		if f := c.field(st); f != nil {
			*f += n
		}
	}
	c.Damaged += d.damaged
}

func readCounts(tx *bolt.Tx) (storedCounts, error) {
	var c storedCounts
	v := tx.Bucket(bucketMeta).Get(metaCounts)
	if v == nil {
		return c, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("stored message counts are undecodable: %w", err)
	}
	return c, nil
}

func writeCounts(tx *bolt.Tx, c storedCounts) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(metaCounts, v)
}

// persistCounts adds the deltas of one transaction to the stored counts,
// inside that transaction.
func persistCounts(tx *bolt.Tx, ds ...*delta) error {
	changed := false
	for _, d := range ds {
		if len(d.counts) > 0 || d.damaged != 0 {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	c, err := readCounts(tx)
	if err != nil {
		return err
	}
	for _, d := range ds {
		c.add(d)
	}
	return writeCounts(tx, c)
}

// loadCounts sets the in-memory counts from the stored ones.
func (s *Store) loadCounts(c storedCounts) {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	s.counts = map[Status]int{StatusQueued: c.Queued, StatusActive: c.Active, StatusDeferred: c.Deferred,
		StatusHeld: c.Held, StatusDone: c.Done}
	s.damaged = c.Damaged
}
