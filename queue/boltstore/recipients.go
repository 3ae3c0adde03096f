package boltstore

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// DeleteRecipients removes the recipients of a message that match pattern
// (MatchAddress) and are still to do, leaving the rest of the message as it
// was; no bounce is sent. When no recipient is left at all the message is
// deleted. It returns the addresses removed; none matching is ErrNoRecipient.
// A recipient in flight cannot be removed (ErrInFlight): its attempt's
// outcome is still to be recorded.
func (s *Store) DeleteRecipients(id ID, pattern string) ([]string, error) {
	var removed []string
	err := s.write(0, func(tx *bolt.Tx, d *delta) error {
		removed = removed[:0]
		r, err := load(tx, id)
		if err != nil {
			return err
		}
		kept := r.Recipients[:0:0]
		for _, rc := range r.Recipients {
			if rc.State.Done() || !MatchAddress(pattern, rc.Address) {
				kept = append(kept, rc)
				continue
			}
			if r.isLeased(rc.Address) {
				return fmt.Errorf("%w: %s", ErrInFlight, rc.Address)
			}
			removed = append(removed, rc.Address)
		}
		if len(removed) == 0 {
			return ErrNoRecipient
		}
		if len(kept) == 0 {
			return remove(tx, r, d)
		}
		r.Recipients = kept
		if r.status() == StatusDone && r.Finished.IsZero() {
			r.Finished = s.now()
		}
		return save(tx, r, d)
	})
	if err != nil {
		return nil, fmt.Errorf("queue: delete recipients %s of %s: %w", pattern, id, err)
	}
	return removed, nil
}
