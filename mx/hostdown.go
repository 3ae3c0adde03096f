package mx

import (
	"sync"
	"time"
)

// Host-down memory defaults: a host that failed to connect is skipped for
// DefaultDownFor, doubling with each further failure up to DefaultDownMax.
const (
	DefaultDownFor = 5 * time.Minute
	DefaultDownMax = time.Hour
)

// DownList remembers destinations (an "ip:port" or any key) that failed to
// connect, so the next message goes straight to the next MX instead of
// waiting for the same connect timeout again. Safe for concurrent use.
type DownList struct {
	mu      sync.Mutex
	base    time.Duration
	maxFor  time.Duration
	now     func() time.Time
	entries map[string]*downEntry
}

type downEntry struct {
	until    time.Time
	failures int
}

// NewDownList makes a list; zero arguments take the defaults.
func NewDownList(base, maxFor time.Duration, now func() time.Time) *DownList {
	if base <= 0 {
		base = DefaultDownFor
	}
	if maxFor < base {
		maxFor = max(DefaultDownMax, base)
	}
	if now == nil {
		now = time.Now
	}
	return &DownList{base: base, maxFor: maxFor, now: now, entries: make(map[string]*downEntry)}
}

// MarkDown records a failed connection and returns how long key is now
// skipped: base, then twice as long for each failure in a row.
func (d *DownList) MarkDown(key string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.pruneLocked(now)
	e := d.entries[key]
	if e == nil {
		e = &downEntry{}
		d.entries[key] = e
	}
	e.failures++
	wait := d.base
	for i := 1; i < e.failures && wait < d.maxFor; i++ {
		wait *= 2
	}
	wait = min(wait, d.maxFor)
	e.until = now.Add(wait)
	return wait
}

// MarkUp forgets key's failures after a successful connection.
func (d *DownList) MarkUp(key string) {
	d.mu.Lock()
	delete(d.entries, key)
	d.mu.Unlock()
}

// IsDown reports whether key failed recently enough to be skipped.
func (d *DownList) IsDown(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[key]
	return e != nil && d.now().Before(e.until)
}

// pruneLocked drops entries long past their time, so the map stays as
// small as the set of hosts that are failing. An entry is kept for a
// while after it expires so that a host failing again doubles its wait.
func (d *DownList) pruneLocked(now time.Time) {
	if len(d.entries) < 1024 {
		return
	}
	for k, e := range d.entries {
		if now.Sub(e.until) > d.maxFor {
			delete(d.entries, k)
		}
	}
}
