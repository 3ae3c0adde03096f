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
		done := e.requestBounce(id)
		if m.Held {
			err = e.store.Release(id)
		} else {
			err = e.store.MakeDue(id)
		}
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

// requestBounce marks id for bouncing at its next lease and returns a
// channel closed when that happened.
func (e *Engine) requestBounce(id queue.ID) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bounces == nil {
		e.bounces = make(map[queue.ID]chan struct{})
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
}

// takeBounceRequest reports whether a freshly leased message is to be
// bounced by the operator; the request is consumed. The waiter is released
// once the outcome is recorded (see complete).
func (e *Engine) takeBounceRequest(id queue.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.bounces[id]
	if !ok {
		return false
	}
	delete(e.bounces, id)
	if e.bounced == nil {
		e.bounced = make(map[queue.ID]chan struct{})
	}
	e.bounced[id] = ch
	return true
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
		if !rc.State.Done() && !final[rc.Address] {
			left = true
		}
	}
	if !left {
		e.mu.Lock()
		delete(e.bounces, m.ID)
		e.mu.Unlock()
		close(ch)
		return
	}
	if err := e.store.MakeDue(m.ID); err != nil {
		e.log.Error().Err(err).Str("queue_id", string(m.ID)).Msg("cannot make the message due for the bounce the operator asked for; run mailqctl bounce again")
	}
}
