package delivery

import (
	"errors"
	"fmt"
	"time"

	"mailq/policy"
	"mailq/queue"
)

// bounceWait bounds how long BounceNow waits for the scheduler to take the
// messages; past it the bounce still happens when they are next leased.
const bounceWait = 30 * time.Second

// BounceNow bounces every recipient still to do of each message now, with
// status 5.0.0 "bounced by operator", and notifies the sender as for any
// bounce (`mailqctl bounce`). A held message is released for it. The store
// has no way to lease one message by id, so the engine makes the message
// due at once and marks it; when the scheduler leases it, the lease is
// recorded as bounced instead of being delivered. A message in flight is
// bounced after its current attempt. BounceNow returns once every message
// was bounced, or with an error naming the ones that were not (yet).
func (e *Engine) BounceNow(ids []queue.ID) error {
	return e.bounceNow(ids, "")
}

// BounceRecipients bounces, as BounceNow does, only the recipients of id
// still to do that match pattern (an address or a domain, see
// queue.MatchAddress); the others keep their schedule.
func (e *Engine) BounceRecipients(id queue.ID, pattern string) error {
	return e.bounceNow([]queue.ID{id}, pattern)
}

func (e *Engine) bounceNow(ids []queue.ID, pattern string) error {
	var errs []error
	var waits []chan struct{}
	var waitIDs []queue.ID
	for _, id := range ids {
		m, err := e.store.Get(id)
		if err != nil {
			errs = append(errs, fmt.Errorf("bounce %s: %w", id, err))
			continue
		}
		if m.Status == queue.StatusDone {
			errs = append(errs, fmt.Errorf("bounce %s: nothing left to bounce: every recipient is already delivered or bounced", id))
			continue
		}
		if pattern != "" && !pendingMatch(m, pattern) {
			errs = append(errs, fmt.Errorf("bounce %s: %w %s", id, queue.ErrNoRecipient, pattern))
			continue
		}
		done := e.requestBounce(id, pattern)
		err = e.makeDueForBounce(id, m.Held)
		if err != nil {
			e.cancelBounce(id)
			errs = append(errs, fmt.Errorf("bounce %s: %w", id, err))
			continue
		}
		waits = append(waits, done)
		waitIDs = append(waitIDs, id)
	}
	e.kick()
	deadline := time.NewTimer(bounceWait)
	defer deadline.Stop()
	for i, done := range waits {
		select {
		case <-done:
		case <-deadline.C:
			for _, id := range waitIDs[i:] {
				errs = append(errs, fmt.Errorf("bounce %s: requested, but the engine has not taken the message within %s (is it running, or all workers busy?); it is bounced when next leased", id, bounceWait))
			}
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// makeDueForBounce makes a message due now so that its next lease bounces
// it: a held one is released (an operator's bounce overrides the hold),
// whether or not it was held when last looked at.
func (e *Engine) makeDueForBounce(id queue.ID, held bool) error {
	if held {
		if err := e.store.Release(id); !errors.Is(err, queue.ErrNotHeld) {
			return err
		}
	}
	err := e.store.MakeDue(id)
	if errors.Is(err, queue.ErrHeld) {
		err = e.store.Release(id)
	}
	return err
}

// requestBounce marks id for bouncing at its next lease and returns a
// channel closed when that happened.
func (e *Engine) requestBounce(id queue.ID, pattern string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bounces == nil {
		e.bounces = make(map[queue.ID]chan struct{})
		e.bounceOnly = make(map[queue.ID]string)
	}
	if _, ok := e.bounces[id]; !ok || pattern == "" {
		// A whole-message request overrides a narrower one.
		if pattern == "" {
			delete(e.bounceOnly, id)
		} else {
			e.bounceOnly[id] = pattern
		}
	}
	if ch, ok := e.bounces[id]; ok {
		return ch
	}
	ch := make(chan struct{})
	e.bounces[id] = ch
	return ch
}

func (e *Engine) cancelBounce(id queue.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.bounces, id)
	delete(e.bounceOnly, id)
}

// pendingMatch reports whether a recipient of m still to do matches pattern.
func pendingMatch(m *queue.Message, pattern string) bool {
	for _, rc := range m.Recipients {
		if !rc.State.Done() && queue.MatchAddress(pattern, rc.Address) {
			return true
		}
	}
	return false
}

// takeBounceRequest reports whether a freshly leased message is to be
// bounced by the operator, and which recipients ("" for all); the request
// is consumed. The waiter is released once the outcome is recorded (see
// complete).
func (e *Engine) takeBounceRequest(id queue.ID) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.bounces[id]
	if !ok {
		return false, ""
	}
	pattern := e.bounceOnly[id]
	delete(e.bounces, id)
	delete(e.bounceOnly, id)
	if e.bounced == nil {
		e.bounced = make(map[queue.ID]chan struct{})
	}
	e.bounced[id] = ch
	return true, pattern
}

// bounceRecorded releases a BounceNow waiter for id, if any.
func (e *Engine) bounceRecorded(id queue.ID) {
	e.mu.Lock()
	ch, ok := e.bounced[id]
	delete(e.bounced, id)
	e.mu.Unlock()
	if ok {
		close(ch)
	}
}

// retakeBounceRequest handles a BounceNow for a message that was in flight
// when it was asked: once that attempt is recorded, the message is made due
// again so the next lease bounces what is left; if nothing is left, the
// waiter is released.
func (e *Engine) retakeBounceRequest(m *queue.Message, all []decided) {
	e.mu.Lock()
	ch, ok := e.bounces[m.ID]
	pattern := e.bounceOnly[m.ID]
	e.mu.Unlock()
	if !ok {
		return
	}
	final := make(map[string]bool)
	for _, dc := range all {
		if dc.decision.Action != policy.Retry {
			final[dc.rcpt.Address] = true
		}
	}
	left := false
	for _, rc := range m.Recipients {
		if !rc.State.Done() && !final[rc.Address] && (pattern == "" || queue.MatchAddress(pattern, rc.Address)) {
			left = true
		}
	}
	if !left {
		e.mu.Lock()
		delete(e.bounces, m.ID)
		delete(e.bounceOnly, m.ID)
		e.mu.Unlock()
		close(ch)
		return
	}
	if err := e.makeDueForBounce(m.ID, false); err != nil {
		e.log.Error().Err(err).Str("queue_id", string(m.ID)).Msg("cannot make the message due for the bounce the operator asked for; run mailqctl bounce again")
	}
}
