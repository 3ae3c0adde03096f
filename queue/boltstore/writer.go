package boltstore

import (
	bolt "go.etcd.io/bbolt"
)

// Group commit: every write goes to one writer goroutine, which runs all the
// requests waiting at that moment in a single bbolt transaction, so one
// fsync acknowledges many messages. There is no artificial delay: while a
// commit is on disk the next requests pile up and form the next batch,
// so a lone submitter pays one fsync and many submitters share them.

const (
	maxBatchRequests = 1000
	// maxBatchBytes bounds the body bytes one transaction carries, so a
	// burst of large messages does not make one giant commit.
	maxBatchBytes = 64 << 20
)

type writeReq struct {
	// fn must be safe to run again after a rolled-back attempt: it may
	// only write through tx and d, and must reset its own outputs.
	fn    func(tx *bolt.Tx, d *delta) error
	bytes int64
	d     delta
	done  chan error
}

// write runs fn in a write transaction shared with other concurrent writes
// and returns once that transaction is committed and fsync'd.
func (s *Store) write(bytes int64, fn func(tx *bolt.Tx, d *delta) error) error {
	req := &writeReq{fn: fn, bytes: bytes, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.reqs <- req
	s.mu.RUnlock()
	return <-req.done
}

func (s *Store) writeLoop() {
	defer s.writer.Done()
	defer s.trimmer.close()
	for first := range s.reqs {
		batch := []*writeReq{first}
		bytes := first.bytes
	drain:
		for len(batch) < maxBatchRequests && bytes < maxBatchBytes {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				bytes += r.bytes
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch in one transaction. If anything fails, the whole
// transaction is rolled back and each request is run alone, so one bad
// request cannot fail its neighbours.
func (s *Store) commit(batch []*writeReq) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		ds := make([]*delta, len(batch))
		for i, r := range batch {
			r.d.reset()
			if err := r.fn(tx, &r.d); err != nil {
				return err
			}
			ds[i] = &r.d
		}
		return persistCounts(tx, ds...)
	})
	if err == nil {
		if s.opts.OnCommit != nil {
			s.opts.OnCommit(len(batch))
		}
		for _, r := range batch {
			s.apply(&r.d)
			r.done <- nil
		}
		s.trimIfGrown()
		return
	}
	if len(batch) == 1 {
		batch[0].done <- err
		return
	}
	for _, r := range batch {
		s.commit([]*writeReq{r})
	}
}
