package delivery

import (
	"context"
	"strings"
	"sync"
	"time"

	"mailq/mtasts"
	"mailq/mx"
)

// STSOptions configures MTA-STS (RFC 8461) on MX routes.
type STSOptions struct {
	// CAFile adds PEM roots to the system's for the policy fetch.
	CAFile string
	// CacheFile keeps fetched policies across restarts ("" = memory only).
	CacheFile string
	// HTTPSPort replaces 443 for the policy fetch (tests).
	HTTPSPort int
}

// stsState is the engine's MTA-STS machinery, built on first use.
type stsState struct {
	once    sync.Once
	fetcher *mtasts.Fetcher
	err     error
	cache   *mtasts.Cache
}

// tlsPolicyFor picks the TLS policy for mail to domain: a configured
// [[tls_policy]], else the domain's MTA-STS policy when enabled, else
// opportunistic.
func (e *Engine) tlsPolicyFor(ctx context.Context, domain string, res *mx.Resolver) appliedPolicy {
	e.mu.Lock()
	policies := e.tlsPolicies
	e.mu.Unlock()
	if p, ok := configuredPolicy(policies, domain); ok {
		return policyFromConfig(p)
	}
	if e.opts.MX.STS == nil {
		return opportunistic
	}
	p, ok := e.stsPolicy(ctx, domain, res)
	if !ok {
		return opportunistic
	}
	switch p.Mode {
	case mtasts.Enforce:
		return appliedPolicy{name: "mta-sts-enforce", level: levelVerify, mx: p.MX}
	case mtasts.Testing:
		return appliedPolicy{name: "mta-sts-testing", level: levelOpportunistic, mx: p.MX, testing: true}
	}
	return opportunistic
}

// SetTLSPolicies replaces the [[tls_policy]] list (SIGHUP reload); the
// next attempts use it. Pooled connections opened under an older policy
// are only reused for mail whose policy has the same name.
func (e *Engine) SetTLSPolicies(p []TLSPolicy) {
	p = append([]TLSPolicy(nil), p...)
	e.mu.Lock()
	e.tlsPolicies = p
	e.mu.Unlock()
}

// stsPolicy returns domain's MTA-STS policy: the cached one while its TXT
// id is unchanged and it has not expired, else a fresh fetch. When the
// TXT lookup or the fetch fails, an unexpired cached policy still holds
// (RFC 8461 §5.1: an attacker who blocks them must not downgrade us).
func (e *Engine) stsPolicy(ctx context.Context, domain string, res *mx.Resolver) (mtasts.Policy, bool) {
	s := e.sts
	s.once.Do(func() {
		o := e.opts.MX.STS
		s.cache = mtasts.OpenCache(o.CacheFile)
		s.fetcher, s.err = mtasts.NewFetcher(mtasts.FetcherOptions{CAFile: o.CAFile, Port: o.HTTPSPort, Lookup: res.Addresses})
		if s.err != nil {
			e.log.Error().Err(s.err).Msg("MTA-STS policies cannot be fetched; cached ones still apply")
		}
	})
	domain = mx.ASCII(strings.ToLower(domain))
	now := e.opts.Now()
	unlock := s.cache.Lock(domain)
	defer unlock()
	cached, haveCached := s.cache.Get(domain, now)
	txt, err := res.TXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return cached, haveCached
	}
	id, announced := mtasts.ParseTXT(txt)
	if !announced || (haveCached && cached.ID == id) || s.fetcher == nil {
		return cached, haveCached
	}
	p, err := s.fetcher.Fetch(ctx, domain)
	if err != nil {
		e.log.Warn().Str("domain", domain).Err(err).Bool("cached_policy", haveCached).Msg("MTA-STS policy announced but not fetched")
		return cached, haveCached
	}
	p.ID = id
	p.Expiry = now.Add(time.Duration(p.MaxAge) * time.Second)
	if err := s.cache.Put(domain, p); err != nil {
		e.log.Warn().Err(err).Msg("cannot write the MTA-STS policy cache file; policies are kept in memory")
	}
	e.log.Info().Str("domain", domain).Str("mode", string(p.Mode)).Strs("mx", p.MX).Int64("max_age", p.MaxAge).Msg("MTA-STS policy fetched")
	return p, true
}
