// Package suppression keeps mail away from addresses known not to exist:
// after a permanent failure whose status says so (5.1.1 and the like) the
// address goes on a list stored in the queue, and later recipients to it
// are bounced (or refused at RCPT) without contacting any server.
package suppression

import (
	"fmt"
	"strings"
	"time"

	"mailq/queue"
)

// DefaultTTL is how long an entry stays in force (30 days).
const DefaultTTL = 30 * 24 * time.Hour

// DefaultCodes are the RFC 3463 statuses that mean "this address does not
// exist": bad destination mailbox address (5.1.1), destination mailbox has
// moved with no forwarding address (5.1.6), mailbox disabled (5.2.1) and
// recipient domain has a null MX (5.1.10, RFC 7505 §4.2).
var DefaultCodes = []string{"5.1.1", "5.1.6", "5.1.10", "5.2.1"}

// Status is the enhanced status of a bounce for a suppressed recipient:
// the address is treated as a bad destination mailbox.
const Status = "5.1.1"

// Options configures a List.
type Options struct {
	Store queue.Store
	TTL   time.Duration // default DefaultTTL
	Codes []string      // default DefaultCodes
	// SkipRoutes names routes whose recipients are neither added nor
	// checked (per-route off switch).
	SkipRoutes []string
	Now        func() time.Time // default time.Now; tests pass a fake clock
}

// List is the suppression list over the queue's store.
type List struct {
	opts  Options
	codes map[string]bool
	skip  map[string]bool
}

// New builds a List.
func New(opts Options) *List {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if len(opts.Codes) == 0 {
		opts.Codes = DefaultCodes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &List{opts: opts, codes: map[string]bool{}, skip: map[string]bool{}}
	for _, c := range opts.Codes {
		l.codes[strings.TrimSpace(c)] = true
	}
	for _, r := range opts.SkipRoutes {
		l.skip[r] = true
	}
	return l
}

// TTL is how long entries stay in force.
func (l *List) TTL() time.Duration { return l.opts.TTL }

// RouteEnabled reports whether the list applies to a route ("" = no route).
func (l *List) RouteEnabled(route string) bool { return l != nil && !l.skip[route] }

// MeansNoSuchAddress reports whether a permanent failure with this enhanced
// status shows the address does not exist.
func (l *List) MeansNoSuchAddress(enhanced string) bool {
	return l != nil && l.codes[strings.TrimSpace(enhanced)]
}

// Check returns the entries in force for the given addresses.
func (l *List) Check(addrs []string) (map[string]queue.Suppression, error) {
	found, err := l.opts.Store.Suppressed(addrs)
	if err != nil {
		return nil, err
	}
	now := l.opts.Now()
	for a, e := range found {
		if l.expired(e, now) {
			delete(found, a)
		}
	}
	return found, nil
}

// Lookup is Check for one address.
func (l *List) Lookup(addr string) (queue.Suppression, bool, error) {
	found, err := l.Check([]string{addr})
	if err != nil {
		return queue.Suppression{}, false, err
	}
	e, ok := found[addr]
	return e, ok, nil
}

func (l *List) expired(e queue.Suppression, now time.Time) bool {
	return !now.Before(e.Time.Add(l.opts.TTL))
}

// Expires is when an entry stops being in force.
func (l *List) Expires(e queue.Suppression) time.Time { return e.Time.Add(l.opts.TTL) }

// Add puts an address on the list by hand (`mailqctl suppression add`).
func (l *List) Add(addr, reason string) error {
	if err := validAddress(addr); err != nil {
		return err
	}
	if reason == "" {
		reason = "added by operator"
	}
	return l.opts.Store.Suppress(queue.Suppression{
		Address: addr, Time: l.opts.Now(),
		Reply: queue.Reply{Code: 550, Enhanced: Status, Text: reason},
	})
}

// Remove takes an address off the list; it reports whether it was there.
func (l *List) Remove(addr string) (bool, error) { return l.opts.Store.Unsuppress(addr) }

// List calls fn for every entry in force.
func (l *List) List(fn func(queue.Suppression) error) error {
	now := l.opts.Now()
	return l.opts.Store.ListSuppressed(func(e queue.Suppression) error {
		if l.expired(e, now) {
			return nil
		}
		return fn(e)
	})
}

// Purge drops expired entries.
func (l *List) Purge() (int, error) {
	return l.opts.Store.PurgeSuppressed(l.opts.Now().Add(-l.opts.TTL))
}

// Diagnostic is what the DSN and the event say for a suppressed recipient:
// "suppressed: " and the reply that put the address on the list.
func Diagnostic(e queue.Suppression) string {
	r := e.Reply
	var b strings.Builder
	b.WriteString("suppressed: ")
	if r.Code != 0 {
		fmt.Fprintf(&b, "%d ", r.Code)
	}
	if r.Enhanced != "" {
		b.WriteString(r.Enhanced + " ")
	}
	b.WriteString(r.Text)
	return strings.TrimSpace(b.String())
}

func validAddress(addr string) error {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n<>") {
		return fmt.Errorf("suppression: %q is not an address like user@example.com", addr)
	}
	return nil
}
