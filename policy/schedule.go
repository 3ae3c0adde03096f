package policy

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// DefaultRetryPolicy is the [retry] table's defaults (docs/delivery.md):
// 5m initial, ×2, capped at 1h, ±10% jitter, 120h lifetime, warning after 4h.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Initial:      5 * time.Minute,
		Multiplier:   2.0,
		MaxInterval:  time.Hour,
		Jitter:       0.1,
		MaxLifetime:  120 * time.Hour,
		DelayWarning: 4 * time.Hour,
	}
}

// Validate reports the first unusable value, naming its [retry] key so the
// operator knows what to fix. DelayWarning 0 means "never warn".
func (p RetryPolicy) Validate() error {
	switch {
	case p.Initial <= 0:
		return fmt.Errorf("retry.initial = %v: must be a positive duration such as \"5m\"", p.Initial)
	case p.Multiplier < 1:
		return fmt.Errorf("retry.multiplier = %v: must be at least 1.0 (1.0 retries at a fixed interval)", p.Multiplier)
	case p.MaxInterval <= 0:
		return fmt.Errorf("retry.max_interval = %v: must be a positive duration such as \"1h\"", p.MaxInterval)
	case p.Jitter < 0 || p.Jitter >= 1:
		return fmt.Errorf("retry.jitter = %v: must be in [0, 1) (0.1 means ±10%%)", p.Jitter)
	case p.MaxLifetime <= 0:
		return fmt.Errorf("retry.max_lifetime = %v: must be a positive duration such as \"120h\"", p.MaxLifetime)
	case p.DelayWarning < 0:
		return fmt.Errorf("retry.delay_warning = %v: must be 0 (never warn) or a positive duration such as \"4h\"", p.DelayWarning)
	}
	return nil
}

// Backoff is the unjittered gap after the n-th failed attempt (n >= 1):
// min(initial × multiplier^(n−1), max_interval) (docs/delivery.md).
// The sequence comes from cenkalti/backoff's ExponentialBackOff with its own
// randomization off; mailq jitters after the cap itself (see Next) so tests
// can state the schedule exactly. n < 1 is treated as 1.
func (p RetryPolicy) Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: 0,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0, // never Stop: the lifetime is ours to enforce
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock, // only read by elapsed-time checks, which are off
	}
	b.Reset()
	var d time.Duration
	for i := 0; i < n; i++ {
		d = b.NextBackOff()
		if d >= p.MaxInterval {
			break // capped: every later gap is the same
		}
	}
	// ExponentialBackOff caps only after the first step; an initial above
	// max_interval must still be capped (the spec's min()).
	return min(d, p.MaxInterval)
}

// Next is the time of the attempt after the n-th failed one at failedAt:
// failedAt + Backoff(n) × a factor drawn uniformly from [1−jitter, 1+jitter]
// via rnd (a value in [0,1); nil uses math/rand/v2). A next attempt that
// would fall after deadline is moved to the deadline itself; a failure at or
// after the deadline is expired (the recipient bounces with 4.4.7).
// A zero deadline means none.
func (p RetryPolicy) Next(n int, failedAt, deadline time.Time, rnd func() float64) (next time.Time, expired bool) {
	if !deadline.IsZero() && !failedAt.Before(deadline) {
		return time.Time{}, true
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	d := p.Backoff(n)
	if p.Jitter > 0 {
		factor := 1 - p.Jitter + 2*p.Jitter*rnd()
		d = time.Duration(float64(d) * factor)
	}
	next = failedAt.Add(d)
	if !deadline.IsZero() && next.After(deadline) {
		next = deadline
	}
	return next, false
}

// Deadline is arrival + max_lifetime, extended by the time the message spent
// held (docs/delivery.md: held time does not count toward max_lifetime).
func Deadline(arrival time.Time, heldFor time.Duration, p RetryPolicy) time.Time {
	return arrival.Add(p.MaxLifetime + max(heldFor, 0))
}

// StatusExpired is the RFC 3463 status of a recipient still failing
// temporarily at its deadline: "delivery time expired".
const StatusExpired = "4.4.7"

// Schedule completes the decisions of the attempt-th failed attempt made at
// now: each Retry gets its RetryAt; a Retry at or after deadline becomes a
// Bounce with Status 4.4.7 that keeps Reply and Diagnostic (the last reply,
// for the DSN's Diagnostic-Code). It returns a new slice; ds is not changed.
func Schedule(ds []Decision, attempt int, now, deadline time.Time, p RetryPolicy, rnd func() float64) []Decision {
	out := make([]Decision, len(ds))
	copy(out, ds)
	for i := range out {
		d := &out[i]
		if d.Action != Retry {
			continue
		}
		next, expired := p.Next(attempt, now, deadline, rnd)
		if expired {
			d.Action = Bounce
			d.Status = StatusExpired
			d.RetryAt = time.Time{}
			continue
		}
		d.RetryAt = next
	}
	return out
}
