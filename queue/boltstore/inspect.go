package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// listPage is how many messages List reads per read transaction. fn is
// called between transactions, so it may itself call Store methods
// (a write that grows the file must remap, which waits for open readers).
const listPage = 64

// Get returns a live or retained done message with its attempt history.
func (s *Store) Get(id ID) (*Message, error) {
	var m *Message
	err := s.view(func(tx *bolt.Tx) error {
		r, err := load(tx, id)
		if err != nil {
			return err
		}
		m = r.public()
		return nil
	})
	return m, err
}

// List calls fn for every message matching f, in id (arrival) order. It
// reads a page of messages at a time, so memory stays bounded and no
// transaction is held while fn runs. An error from fn stops the walk and
// is returned.
func (s *Store) List(f Filter, fn func(*Message) error) error {
	return s.walkList(f, true, func(m *Message, _ []byte) error { return fn(m) })
}

// ListJSON is List for a caller that prints JSON: fn gets each message as
// the JSON object of a Message without its attempts (what `mailqctl list
// --json` prints, without a newline), valid only during the call. Live
// messages are stored in that form in the live index (record.go, save), so
// an unfiltered list passes the stored bytes through without decoding or
// encoding anything (issue 13: list of 100k in a second).
func (s *Store) ListJSON(f Filter, fn func(line []byte) error) error {
	return s.walkList(f, false, func(m *Message, raw []byte) error {
		if raw == nil {
			var err error
			if raw, err = json.Marshal(m); err != nil {
				return err
			}
		}
		return fn(raw)
	})
}

// walkList is List and ListJSON. Live messages come from the live index,
// whose values hold each message's listing (so no record is read); done
// ones from their records, without the attempt history. raw is the stored
// listing, nil when there is none; m is nil when the caller did not ask
// for it (needMessage) and the filter needed no decoding.
func (s *Store) walkList(f Filter, needMessage bool, fn func(m *Message, raw []byte) error) error {
	fromLive, bucket := true, bucketLive
	if f.Status == StatusDone {
		fromLive, bucket = false, bucketMsgs
	}
	lf := listFilter{Filter: f, nullSender: f.Sender == "<>"}
	if f.OlderThan > 0 {
		lf.cutoff = s.now().Add(-f.OlderThan)
	}
	decode := needMessage || f != (Filter{})
	type listed struct {
		m   *Message
		raw []byte
	}
	var after []byte
	walked, trimmed := 0, 0
	defer func() {
		if walked > trimmed {
			s.trim()
		}
	}()
	for {
		if walked-trimmed >= trimAfter {
			s.trim()
			trimmed = walked
		}
		var page []listed
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else if k, v = c.Seek(after); k != nil && string(k) == string(after) {
				k, v = c.Next()
			}
			for ; k != nil && len(page) < listPage; k, v = c.Next() {
				after = append(after[:0], k...)
				walked++
				var e listed
				if fromLive && len(v) > liveArrivalLen {
					e.raw = append([]byte(nil), v[liveArrivalLen:]...) // v is only valid inside the transaction
					if decode {
						e.m = &Message{}
						if err := json.Unmarshal(e.raw, e.m); err != nil || e.m.ID != ID(k) {
							e.m, e.raw = nil, nil // read from the record below
						}
					}
				}
				if e.raw == nil {
					m, err := loadListing(tx, ID(k))
					if err != nil {
						continue // set aside as damaged at the next open
					}
					e.m = m
				}
				if e.m != nil && !lf.matches(e.m) {
					continue
				}
				page = append(page, e)
			}
			if k == nil {
				after = nil
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range page {
			if e.m == nil && needMessage {
				continue // cannot happen: decode is set
			}
			if err := fn(e.m, e.raw); err != nil {
				return err
			}
		}
		if after == nil {
			return nil
		}
	}
}

// listingRecord is the part of a stored record that list prints: the
// attempt history, most of a deferred message's record, is skipped
// without being decoded (issue 18: list must not pay for history it does
// not show).
type listingRecord struct {
	Message
	Attempts skippedJSON `json:"attempts"`
	Token    uint64      `json:"lease_token,omitempty"`
}

// skippedJSON accepts any JSON value and keeps nothing of it.
type skippedJSON struct{}

func (*skippedJSON) UnmarshalJSON([]byte) error { return nil }

// loadListing reads a message for List, without its attempt history.
func loadListing(tx *bolt.Tx, id ID) (*Message, error) {
	v := tx.Bucket(bucketMsgs).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var lr listingRecord
	if err := json.Unmarshal(v, &lr); err != nil || lr.ID != id || len(lr.Recipients) == 0 {
		return nil, fmt.Errorf("queue: message %s: undecodable record", id)
	}
	r := record{Message: lr.Message, Token: lr.Token}
	return r.public(), nil
}

// listFilter is a Filter prepared once per List call.
type listFilter struct {
	Filter
	nullSender bool // Sender "<>" selects the null sender
	cutoff     time.Time
}

func (f *listFilter) matches(m *Message) bool {
	switch {
	case f.Status == "" && m.Status == StatusDone:
		return false
	case f.Status != "" && m.Status != f.Status:
		return false
	case f.nullSender && m.Sender != "":
		return false
	case !f.nullSender && f.Sender != "" && !MatchAddress(f.Sender, m.Sender):
		return false
	case !f.cutoff.IsZero() && !m.Arrival.Before(f.cutoff):
		return false
	}
	if f.Recipient == "" {
		return true
	}
	for _, rc := range m.Recipients {
		// A recipient already delivered or bounced is not what an operator
		// selecting "mail for @dom" means to act on (issue 12 item 7);
		// among done messages every recipient is done.
		if rc.State.Done() && f.Status != StatusDone {
			continue
		}
		if MatchAddress(f.Recipient, rc.Address) {
			return true
		}
	}
	return false
}

// Stats returns counts by status (kept in step with every commit), the age
// of the oldest live message (first key of the live bucket) and the outcome
// totals since Open.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.view(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketLive).Cursor().First()
		if k != nil && len(v) >= liveArrivalLen {
			arrival := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			st.OldestAge = max(s.now().Sub(arrival), 0)
		}
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	s.countMu.Lock()
	st.Queued = s.counts[StatusQueued]
	st.Active = s.counts[StatusActive]
	st.Deferred = s.counts[StatusDeferred]
	st.Held = s.counts[StatusHeld]
	st.Done = s.counts[StatusDone]
	st.Damaged = s.damaged
	s.countMu.Unlock()
	st.Live = st.Queued + st.Active + st.Deferred + st.Held
	st.DeliveredTotal = s.deliveredTotal.Load()
	st.BouncedTotal = s.bouncedTotal.Load()
	st.DeferredTotal = s.deferredTotal.Load()
	return st, nil
}
