package delivery

// This file decides the TLS an MX connection must have, in the order a
// receiver can rely on: a configured [[tls_policy]] for the domain, else
// the domain's MTA-STS policy (RFC 8461), else opportunistic STARTTLS
// (RFC 3207, RFC 7435: encrypt when offered, never verify, fall back to
// plaintext).

import (
	"strings"

	"mailq/metrics"
	"mailq/mtasts"
	"mailq/smtpproto"
)

// TLSPolicy is one [[tls_policy]]: what mail to Domain requires. It takes
// precedence over MTA-STS.
type TLSPolicy struct {
	// Domain is a recipient domain, or ".example.com" for its subdomains.
	Domain string
	// Require is "verify" (STARTTLS with a certificate valid for the MX
	// name), "encrypt" (STARTTLS, any certificate) or "none" (plaintext,
	// STARTTLS not even tried).
	Require string
}

// tlsLevel is what one connection asks of TLS.
type tlsLevel int

const (
	levelNone          tlsLevel = iota // no STARTTLS
	levelOpportunistic                 // STARTTLS when offered, unverified; plaintext on failure
	levelEncrypt                       // STARTTLS required, unverified
	levelVerify                        // STARTTLS required, chain and MX name verified
)

func (l tlsLevel) String() string {
	return [...]string{"none", "opportunistic", "encrypt", "verify"}[l]
}

// appliedPolicy is the TLS policy for one recipient domain.
type appliedPolicy struct {
	// name is the metric label and what the attempt record shows: none,
	// opportunistic, configured-encrypt, configured-verify, configured-none,
	// mta-sts-enforce, mta-sts-testing.
	name  string
	level tlsLevel
	// mx are the MTA-STS "mx:" patterns (RFC 8461 §4.1); nil = any host.
	mx []string
	// testing: MTA-STS testing mode, violations are reported, never enforced.
	testing bool
}

// configuredPolicy finds the [[tls_policy]] for domain: exact beats the
// longest ".suffix".
func configuredPolicy(policies []TLSPolicy, domain string) (TLSPolicy, bool) {
	domain = strings.ToLower(domain)
	best, found := TLSPolicy{}, false
	for _, p := range policies {
		d := strings.ToLower(p.Domain)
		switch {
		case d == domain:
			return p, true
		case strings.HasPrefix(d, ".") && strings.HasSuffix(domain, d) && len(d) > len(best.Domain):
			best, found = p, true
		}
	}
	return best, found
}

func policyFromConfig(p TLSPolicy) appliedPolicy {
	switch p.Require {
	case "verify":
		return appliedPolicy{name: "configured-verify", level: levelVerify}
	case "encrypt":
		return appliedPolicy{name: "configured-encrypt", level: levelEncrypt}
	default:
		return appliedPolicy{name: "configured-none", level: levelNone}
	}
}

var opportunistic = appliedPolicy{name: "opportunistic", level: levelOpportunistic}

// allowsMX reports whether the policy lets mail go to host.
func (p appliedPolicy) allowsMX(host string) bool {
	return p.mx == nil || mtasts.Policy{MX: p.mx}.Matches(host)
}

// levels are the connection levels to try in turn on one address: a
// failed STARTTLS steps down only where the policy allows it.
func (p appliedPolicy) levels() []tlsLevel {
	switch {
	case p.testing:
		// RFC 8461 §5: testing mode reports a failed validation but
		// delivers as if there were no policy.
		return []tlsLevel{levelVerify, levelOpportunistic, levelNone}
	case p.level == levelOpportunistic:
		return []tlsLevel{levelOpportunistic, levelNone}
	}
	return []tlsLevel{p.level}
}

// mxSettings are the route's settings for one connection to host at level.
func mxSettings(base smtpproto.Settings, host string, level tlsLevel) smtpproto.Settings {
	s := base
	s.Host = host
	s.SSLEnable = false // MX hosts speak STARTTLS on port 25 (RFC 3207)
	s.SSLTrust, s.SSLCheckServerIdentity = "", nil
	switch level {
	case levelNone:
		s.StartTLSEnable, s.StartTLSRequired = false, false
	case levelOpportunistic:
		// RFC 7435: an unauthenticated channel beats a plaintext one.
		s.StartTLSEnable, s.StartTLSRequired = true, false
		s.SSLTrust, s.SSLCheckServerIdentity = "*", ptrTo(false)
	case levelEncrypt:
		s.StartTLSEnable, s.StartTLSRequired = true, true
		s.SSLTrust, s.SSLCheckServerIdentity = "*", ptrTo(false)
	case levelVerify:
		s.StartTLSEnable, s.StartTLSRequired = true, true
	}
	return s
}

func ptrTo[T any](v T) *T { return &v }

// countTLS adds one connection outcome to mailq_tls_policy_total.
func countTLS(policy, result string) {
	metrics.TLSPolicy.WithLabelValues(policy, result).Inc()
}
