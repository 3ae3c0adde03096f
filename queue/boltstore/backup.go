package boltstore

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent snapshot of the whole store to w: one read
// transaction's view, written by bbolt's Tx.WriteTo, so writers (enqueue,
// delivery) go on meanwhile. Every message committed before Backup began
// is in it. The result is a complete queue.db: restoring is stopping the
// daemon and putting it in place (README, "Backup and restore").
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("queue: backup: %w", err)
	}
	return n, nil
}
