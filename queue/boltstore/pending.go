package boltstore

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Pending bodies: a message larger than inlineBodyMax is not held in memory
// while it arrives. Enqueue takes its id first, writes its body chunks as
// they come in (each batch its own group-committed transaction) and marks
// the id in the pending bucket; the envelope record is written, and the mark
// removed, in the last transaction. A body left pending by a failed or
// crashed submission has no record, so nothing sees it; Open removes it.
//
//	pending  id → uint64 start ns (a body being written, no record yet)

var bucketPending = []byte("pending")

const (
	// inlineBodyMax is the largest body kept in memory and stored with its
	// record in one transaction (the common case: one fsync per message).
	inlineBodyMax = 256 << 10
	// pendingBatch is the body bytes one pending write carries, so each
	// submission in flight holds at most this much (plus bbolt's copy
	// during the commit).
	pendingBatch = 4 * bodyChunkSize
)

// removePendingBodies deletes the bodies of submissions that never
// completed (the daemon stopped or crashed while they arrived). Run at Open.
func removePendingBodies(tx *bolt.Tx) (int, error) {
	pending, err := tx.CreateBucketIfNotExists(bucketPending)
	if err != nil {
		return 0, fmt.Errorf("create bucket %s: %w", bucketPending, err)
	}
	var ids []ID
	if err := pending.ForEach(func(k, _ []byte) error {
		ids = append(ids, ID(k))
		return nil
	}); err != nil {
		return 0, err
	}
	for _, id := range ids {
		if tx.Bucket(bucketMsgs).Get([]byte(id)) == nil { // never committed
			if err := deleteBody(tx, id); err != nil {
				return 0, err
			}
		}
		if err := pending.Delete([]byte(id)); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// beginPending takes a new id, marks it pending and stores the first chunks.
func (s *Store) beginPending(chunks [][]byte, bytes int64) (ID, error) {
	var id ID
	err := s.write(bytes, func(tx *bolt.Tx, d *delta) error {
		seq, err := tx.Bucket(bucketMsgs).NextSequence()
		if err != nil {
			return err
		}
		id = formatID(seq)
		var start [8]byte
		binary.BigEndian.PutUint64(start[:], uint64(s.now().UnixNano()))
		if err := tx.Bucket(bucketPending).Put([]byte(id), start[:]); err != nil {
			return err
		}
		return putChunks(tx, id, 0, chunks)
	})
	return id, err
}

// appendPending stores further chunks of a pending body, numbered from first.
func (s *Store) appendPending(id ID, first int, chunks [][]byte, bytes int64) error {
	return s.write(bytes, func(tx *bolt.Tx, d *delta) error {
		return putChunks(tx, id, first, chunks)
	})
}

// abandonPending removes a pending body after its submission failed.
// If this fails too, Open removes it later.
func (s *Store) abandonPending(id ID) {
	s.write(0, func(tx *bolt.Tx, d *delta) error {
		if err := deleteBody(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Delete([]byte(id))
	})
}
