package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"mailq/queue"
)

// delta counts status changes made inside one transaction; it is applied
// to Store.counts only once that transaction committed.
type delta struct {
	counts  map[Status]int
	damaged int
	found   []damage // records set aside as damaged, reported after commit
	signal  bool
	events  bool // events were stored (journal.go)
	// outcome totals, in recipients
	delivered, bounced, deferred int64
}

func (d *delta) reset() { *d = delta{} }

func (d *delta) move(from, to Status) {
	if from == to {
		return
	}
	if d.counts == nil {
		d.counts = map[Status]int{}
	}
	if from != "" {
		d.counts[from]--
	}
	if to != "" {
		d.counts[to]++
	}
}

func (s *Store) apply(d *delta) {
	s.countMu.Lock()
	for st, n := range d.counts {
		s.counts[st] += n
	}
	s.damaged += d.damaged
	s.countMu.Unlock()
	if s.opts.OnDamaged != nil {
		for _, f := range d.found {
			s.opts.OnDamaged(f.id, f.reason)
		}
	}
	s.deliveredTotal.Add(d.delivered)
	s.bouncedTotal.Add(d.bounced)
	s.deferredTotal.Add(d.deferred)
	if d.signal {
		s.signal()
	}
	if d.events {
		s.events.Fire()
	}
}

func decodeRecord(id ID, v []byte) (*record, error) {
	r := &record{}
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("undecodable record: %w", err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("record names id %q, stored under %q", r.ID, id)
	}
	if len(r.Recipients) == 0 {
		return nil, fmt.Errorf("record has no recipients")
	}
	r.loaded, r.loadedToken = r.Status, r.Token
	return r, nil
}

// load reads a record in tx; ErrNotFound when there is none.
func load(tx *bolt.Tx, id ID) (*record, error) {
	v := tx.Bucket(bucketMsgs).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	r, err := decodeRecord(id, v)
	if err != nil {
		return nil, fmt.Errorf("queue: message %s: %v", id, err)
	}
	return r, nil
}

// status derives the message status (queue.StatusOf).
func (r *record) status() Status { return queue.StatusOf(r.Recipients, r.Held, r.Token != 0) }

// earliest is the earliest NextAttempt of the recipients still to do.
func (r *record) earliest() time.Time { return queue.EarliestAttempt(r.Recipients) }

func (r *record) isLeased(addr string) bool {
	for _, a := range r.Leased {
		if a == addr {
			return true
		}
	}
	return false
}

// dueNow makes every recipient still to do and not in flight due at now.
func (r *record) dueNow(now time.Time) { queue.MakeDueNow(r.Recipients, r.Leased, now) }

// requestNow is dueNow for an operator's retry or flush (queue.BringForward).
func (r *record) requestNow(now time.Time) { queue.BringForward(r.Recipients, r.Leased, now) }

// save stores r and brings every index in line with it: the schedule index
// holds it iff it is live, not held and not leased; live and finished
// follow whether it is done. All writes go through here so the indexes
// cannot drift from the records.
func save(tx *bolt.Tx, r *record, d *delta) error {
	r.Status = r.status()
	r.NextAttempt = r.earliest()
	id := []byte(r.ID)
	var schedAt int64
	if r.Status == StatusQueued || r.Status == StatusDeferred {
		schedAt = r.NextAttempt.UnixNano()
		if schedAt <= 0 {
			schedAt = 1 // 0 means "not indexed"
		}
	}
	if schedAt != r.SchedAt || r.Status != r.loaded {
		sched := tx.Bucket(bucketSched)
		if r.SchedAt != 0 && r.SchedAt != schedAt {
			if err := sched.Delete(timeKey(r.SchedAt, r.ID)); err != nil {
				return err
			}
		}
		if schedAt != 0 {
			if err := sched.Put(timeKey(schedAt, r.ID), schedValue(r.Status)); err != nil {
				return err
			}
		}
		r.SchedAt = schedAt
	}
	if (r.Token != 0) != (r.loadedToken != 0) {
		if err := setLeased(tx, r.ID, r.Token != 0); err != nil {
			return err
		}
		r.loadedToken = r.Token
	}
	if r.Status != StatusDone {
		v, err := liveValue(r)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketLive).Put(id, v); err != nil {
			return err
		}
	}
	if r.Status == StatusDone && r.loaded != StatusDone {
		if err := tx.Bucket(bucketLive).Delete(id); err != nil {
			return err
		}
		// Nothing sends a done message again, and its notices were built
		// before its outcome was recorded (delivery/outcome.go): the body
		// goes now, not after Retention, so the file does not carry a week
		// of delivered mail (issue 13: 636 MB after 65k messages).
		if err := deleteBody(tx, r.ID); err != nil {
			return err
		}
		r.Chunks, r.BodyDropped = 0, true
		if err := tx.Bucket(bucketFinished).Put(timeKey(r.Finished.UnixNano(), r.ID), nil); err != nil {
			return err
		}
	}
	if err := putRecord(tx, r); err != nil {
		return err
	}
	d.move(r.loaded, r.Status)
	r.loaded = r.Status
	return nil
}

// schedValue is what a schedule index entry holds: the message's status
// (queued or deferred), so Flush can count without decoding the record and
// a damaged record found through the index can be uncounted.
func schedValue(st Status) []byte {
	if st == StatusDeferred {
		return []byte{'d'}
	}
	return []byte{'q'}
}

func schedStatus(v []byte) Status {
	if len(v) == 1 && v[0] == 'd' {
		return StatusDeferred
	}
	return StatusQueued
}

// setLeased keeps the leased index (id → "") in step with lease tokens, so
// Open finds what a crash left in flight without walking every record.
func setLeased(tx *bolt.Tx, id ID, leased bool) error {
	if leased {
		return tx.Bucket(bucketLeased).Put([]byte(id), nil)
	}
	return tx.Bucket(bucketLeased).Delete([]byte(id))
}

func putRecord(tx *bolt.Tx, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("queue: encode message %s: %w", r.ID, err)
	}
	if err := tx.Bucket(bucketMsgs).Put([]byte(r.ID), v); err != nil {
		return fmt.Errorf("queue: store message %s: %w", r.ID, err)
	}
	return nil
}

// remove deletes a message, its body and its index entries.
func remove(tx *bolt.Tx, r *record, d *delta) error {
	id := []byte(r.ID)
	if r.SchedAt != 0 {
		if err := tx.Bucket(bucketSched).Delete(timeKey(r.SchedAt, r.ID)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketLive).Delete(id); err != nil {
		return err
	}
	if r.loadedToken != 0 {
		if err := setLeased(tx, r.ID, false); err != nil {
			return err
		}
	}
	if !r.Finished.IsZero() {
		if err := tx.Bucket(bucketFinished).Delete(timeKey(r.Finished.UnixNano(), r.ID)); err != nil {
			return err
		}
	}
	if err := deleteBody(tx, r.ID); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMsgs).Delete(id); err != nil {
		return err
	}
	d.move(r.loaded, "")
	return nil
}

// liveArrivalLen is the length of the arrival time that starts each value
// of the live index.
const liveArrivalLen = 8

// liveValue is what the live index holds for r: its arrival time (uint64
// ns, for Stats' OldestAge) followed by its listing, the JSON of the
// Message without attempts that List and ListJSON return. Kept by save
// with the record, so list reads neither records nor histories. A change
// to Message's fields needs indexVersion raised, so stores rebuild it.
func liveValue(r *record) ([]byte, error) {
	m := r.public()
	m.Attempts = nil
	js, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("queue: encode the listing of %s: %w", r.ID, err)
	}
	v := make([]byte, liveArrivalLen, liveArrivalLen+len(js))
	binary.BigEndian.PutUint64(v, uint64(r.Arrival.UnixNano()))
	return append(v, js...), nil
}

// storedSize is how many body bytes the bodies bucket holds for r.
func (r *record) storedSize() int64 {
	if r.BodyDropped {
		return 0
	}
	return r.Size
}

// public returns the caller's copy of the message.
func (r *record) public() *Message {
	m := r.Message
	m.Status = r.status()
	m.NextAttempt = r.earliest()
	return &m
}
