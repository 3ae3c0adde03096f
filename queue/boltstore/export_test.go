package boltstore

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FillDeferred is fillDeferred for the external tests of this package.
var FillDeferred = fillDeferred

// fillDeferred adds n messages (a small body, one recipient) that have had
// one failed attempt and wait until retryAt, as a route that is down leaves
// them. It writes them directly, 5000 per transaction, because going
// through Enqueue, Lease and RecordOutcome would make big-queue tests spend
// minutes filling.
func fillDeferred(s *Store, n int, retryAt time.Time) error {
	return fillDeferredSized(s, n, 0, retryAt)
}

// fillDeferredSized is fillDeferred with bodies of size bytes (at most one
// chunk); 0 is a short body.
func fillDeferredSized(s *Store, n, size int, retryAt time.Time) error {
	body := []byte("Subject: filler\r\n\r\nfiller\r\n")
	if size > len(body) {
		body = append(body, bytes.Repeat([]byte("x"), min(size, bodyChunkSize)-len(body))...)
	}
	for done := 0; done < n; {
		part := min(5000, n-done)
		err := s.write(0, func(tx *bolt.Tx, d *delta) error {
			now := s.now()
			for range part {
				seq, err := tx.Bucket(bucketMsgs).NextSequence()
				if err != nil {
					return err
				}
				id := formatID(seq)
				r := &record{Message: Message{ID: id, Sender: "a@example.com", Size: int64(len(body)), Arrival: now, Source: "smtp",
					Recipients: []Recipient{{Address: "b@example.org", State: Deferred, Attempts: 1, NextAttempt: retryAt,
						LastReply: &Reply{Code: 421, Enhanced: "4.4.1", Text: "connection refused"}}},
					Attempts: []Attempt{{Time: now, Route: "down", Recipients: []string{"b@example.org"}}}}, Chunks: 1}
				if err := tx.Bucket(bucketBodies).Put(chunkKey(id, 0), body); err != nil {
					return err
				}
				if err := tx.Bucket(bucketLive).Put([]byte(id), timeKey(now.UnixNano(), "")[:8]); err != nil {
					return err
				}
				if err := save(tx, r, d); err != nil {
					return fmt.Errorf("fill %s: %w", id, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += part
	}
	return nil
}
