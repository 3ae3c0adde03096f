// Package mx finds where mail for a domain goes: MX resolution per RFC 5321
// §5.1 (preference order, implicit MX, null MX of RFC 7505), a DNS cache
// that honours TTLs, and a memory of hosts that were recently down.
package mx

import "fmt"

// RFC 3463 statuses a lookup can end in.
const (
	// StatusNullMX: the domain publishes "MX 0 ." (RFC 7505 §3: it accepts
	// no mail); permanent, no connection is made.
	StatusNullMX = "5.1.10"
	// StatusNoDomain: the domain does not exist (NXDOMAIN) or has neither
	// MX nor address records (RFC 3463 X.1.2 "bad destination system").
	StatusNoDomain = "5.1.2"
	// StatusUnusableMX: MX records exist but none is usable (RFC 5321 §5.1:
	// "this situation MUST be reported as an error"), e.g. every target is
	// an IP address instead of a host name (X.4.4 "unable to route").
	StatusUnusableMX = "5.4.4"
	// StatusDNSFailure: the resolver failed (SERVFAIL, REFUSED, timeout);
	// X.4.3 "directory server failure", to be retried.
	StatusDNSFailure = "4.4.3"
)

// Error is a lookup that ended without a usable host. Status says whether
// mail should bounce (5.x.x) or be retried (4.x.x).
type Error struct {
	Name   string // the name looked up
	Status string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("mx: %s: %s (%s)", e.Name, e.Reason, e.Status)
}

// Permanent reports a 5.x.x status: retrying cannot help.
func (e *Error) Permanent() bool { return len(e.Status) > 0 && e.Status[0] == '5' }
