package boltstore

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked means the queue file is locked by a running daemon, so it
// cannot be opened read-only beside it (bbolt's shared lock waits for the
// daemon's exclusive one).
var ErrLocked = errors.New("queue: the queue file is in use by a running mailq")

// readOnlyWait is how long OpenReadOnly waits for the file lock: a
// daemon holds it for as long as it runs, so waiting longer only delays
// the answer.
const readOnlyWait = 300 * time.Millisecond

// OpenReadOnly opens the queue file for reading only, for an operator
// looking at the queue while the daemon is stopped: Get, List, Body and
// Stats work, every write fails, nothing is recovered or changed on disk.
// It fails with ErrLocked while a daemon has the file open.
func OpenReadOnly(path string, opts Options) (*Store, error) {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: readOnlyWait})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("queue: open %s read-only: %w", path, err)
	}
	s := &Store{db: db, opts: opts, changed: make(chan struct{}, 1), reqs: make(chan *writeReq, 1), counts: map[Status]int{}}
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("queue: %s is not a mailq queue file (no %q bucket)", path, b)
			}
		}
		return tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
			if r, err := decodeRecord(ID(k), v); err == nil {
				s.counts[r.status()]++
			} else {
				s.damaged++
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// Writes go through the writer as usual and fail there: bbolt refuses
	// a write transaction on a read-only file.
	s.writer.Add(1)
	go s.writeLoop()
	return s, nil
}
