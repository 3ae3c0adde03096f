package mx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// DefaultTimeout bounds one DNS exchange.
const DefaultTimeout = 5 * time.Second

// maxCNAMEHops bounds an alias chain (loops end here).
const maxCNAMEHops = 8

// Options configures a Resolver.
type Options struct {
	// Server is the recursive resolver, "host:port" (port 53 when absent);
	// "" = the first nameserver of /etc/resolv.conf.
	Server    string
	Timeout   time.Duration // per exchange; 0 = DefaultTimeout
	CacheSize int           // answers kept; 0 = DefaultCacheSize
	Now       func() time.Time
	// Shuffle reorders hosts of equal preference (RFC 5321 §5.1); nil =
	// math/rand/v2. Tests pass a deterministic one.
	Shuffle func(n int, swap func(i, j int))
}

// Resolver asks one recursive DNS server, through a TTL-honouring cache.
// Safe for concurrent use.
type Resolver struct {
	server  string
	timeout time.Duration
	cache   *cache
	shuffle func(n int, swap func(i, j int))
}

// New builds a resolver. It fails only when no server is given and
// /etc/resolv.conf names none.
func New(opts Options) (*Resolver, error) {
	server := opts.Server
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			return nil, fmt.Errorf("mx: no resolver configured and /etc/resolv.conf names none (%v): set resolver = \"host:port\"", err)
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Shuffle == nil {
		opts.Shuffle = rand.Shuffle
	}
	return &Resolver{server: server, timeout: opts.Timeout, cache: newCache(opts.CacheSize, opts.Now), shuffle: opts.Shuffle}, nil
}

// Server is the resolver's "host:port".
func (r *Resolver) Server() string { return r.server }

// Host is one mail exchanger of a domain.
type Host struct {
	Name       string // lower case, without the root dot
	Preference uint16
	// Implicit: the domain had no MX, so it is its own exchanger (RFC 5321
	// §5.1 "implicit MX").
	Implicit bool
	// Literal is set when the recipient domain was an address literal
	// ("[192.0.2.1]", RFC 5321 §4.1.3): no lookup, this address only.
	Literal netip.Addr
}

// MailHosts returns the exchangers of domain in the order to try them
// (RFC 5321 §5.1): by preference, equal preferences shuffled. A domain
// without MX is its own exchanger when it has an address. Errors are
// *Error: null MX, NXDOMAIN and "nothing usable" are permanent, resolver
// failures temporary.
func (r *Resolver) MailHosts(ctx context.Context, domain string) ([]Host, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if addr, ok := ParseLiteral(domain); ok {
		return []Host{{Name: domain, Literal: addr}}, nil
	}
	domain = ASCII(domain)
	if domain == "" {
		return nil, &Error{Name: domain, Status: StatusNoDomain, Reason: "empty domain"}
	}
	rrs, err := r.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var hosts []Host
	null, numeric := false, 0
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		name := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		switch {
		case name == "":
			null = true // RFC 7505 §3: "MX 0 ."
			continue
		case isIPAddress(name):
			// RFC 5321 §5.1: an MX names a host, never an address; such a
			// record is unusable (Postfix skips it too).
			numeric++
			continue
		}
		hosts = append(hosts, Host{Name: name, Preference: mx.Preference})
	}
	if null && len(hosts) == 0 {
		return nil, &Error{Name: domain, Status: StatusNullMX, Reason: "the domain publishes a null MX (RFC 7505): it accepts no mail"}
	}
	if len(hosts) == 0 && numeric > 0 {
		return nil, &Error{Name: domain, Status: StatusUnusableMX, Reason: "every MX record names an IP address instead of a host (RFC 5321 §5.1)"}
	}
	if len(hosts) == 0 {
		// Implicit MX: the domain itself, if it has an address.
		addrs, err := r.Addresses(ctx, domain)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &Error{Name: domain, Status: StatusNoDomain, Reason: "the domain has no MX and no address record"}
		}
		return []Host{{Name: domain, Implicit: true}}, nil
	}
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].Preference < hosts[j].Preference })
	for i := 0; i < len(hosts); {
		j := i + 1
		for j < len(hosts) && hosts[j].Preference == hosts[i].Preference {
			j++
		}
		group := hosts[i:j]
		r.shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}
	return hosts, nil
}

// Addresses returns host's IPv6 and IPv4 addresses, alternating families
// (IPv6 first) so that a broken family costs one try, not all of them. An
// alias (CNAME) is followed. A host with no address is an empty list, not
// an error; NXDOMAIN and resolver failures are *Error.
func (r *Resolver) Addresses(ctx context.Context, host string) ([]netip.Addr, error) {
	if addr, ok := ParseLiteral(host); ok {
		return []netip.Addr{addr}, nil
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var v6, v4 []netip.Addr
	var errs []error
	for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
		rrs, err := r.lookup(ctx, host, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			switch a := rr.(type) {
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
					v6 = append(v6, ip.Unmap())
				}
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
					v4 = append(v4, ip)
				}
			}
		}
	}
	if len(v6)+len(v4) == 0 && len(errs) > 0 {
		// Prefer the temporary error: one family failing to resolve is no
		// proof that the host does not exist.
		for _, err := range errs {
			var me *Error
			if errors.As(err, &me) && !me.Permanent() {
				return nil, err
			}
		}
		return nil, errs[0]
	}
	out := make([]netip.Addr, 0, len(v6)+len(v4))
	for i := 0; i < max(len(v6), len(v4)); i++ {
		if i < len(v6) {
			out = append(out, v6[i])
		}
		if i < len(v4) {
			out = append(out, v4[i])
		}
	}
	return out, nil
}

// TXT returns the TXT strings of name, each record's strings joined (RFC
// 8461 §3.1 reads a record this way). A name without TXT is an empty list.
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, strings.ToLower(strings.TrimSuffix(name, ".")), dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// lookup returns the records of type qt at name, following aliases both
// within one answer and by asking again for the alias target (RFC 1034
// §3.6.2). NODATA is an empty list.
func (r *Resolver) lookup(ctx context.Context, name string, qt uint16) ([]dns.RR, error) {
	target := name
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		a, err := r.query(ctx, target, qt)
		if err != nil {
			return nil, err
		}
		if a.rcode == dns.RcodeNameError {
			return nil, &Error{Name: target, Status: StatusNoDomain, Reason: "no such domain (NXDOMAIN)"}
		}
		// Walk the chain inside the answer. The queried name itself with
		// nothing for it is NODATA; an alias target the answer says nothing
		// about is asked for again (an authoritative server does not chase).
		asked := target
		for i := 0; i <= maxCNAMEHops; i++ {
			var found []dns.RR
			var alias string
			seen := false
			for _, rr := range a.records {
				if !strings.EqualFold(strings.TrimSuffix(rr.Header().Name, "."), target) {
					continue
				}
				seen = true
				switch {
				case rr.Header().Rrtype == qt:
					found = append(found, rr)
				case rr.Header().Rrtype == dns.TypeCNAME:
					alias = strings.ToLower(strings.TrimSuffix(rr.(*dns.CNAME).Target, "."))
				}
			}
			if len(found) > 0 || (alias == "" && (seen || target == asked)) {
				return found, nil
			}
			if alias == "" {
				break // re-query target
			}
			target = alias
		}
	}
	return nil, &Error{Name: name, Status: StatusDNSFailure, Reason: "alias (CNAME) chain too long or looping"}
}

// query asks the server once (or answers from the cache). Only NOERROR and
// NXDOMAIN are answers; every other rcode and every transport failure is
// a temporary *Error, never cached.
func (r *Resolver) query(ctx context.Context, name string, qt uint16) (answer, error) {
	key := dns.TypeToString[qt] + " " + name
	if a, ok := r.cache.get(key); ok {
		return a, nil
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qt)
	q.SetEdns0(4096, false)
	qctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: r.timeout}
	resp, _, err := c.ExchangeContext(qctx, q, r.server)
	if err == nil && resp.Truncated {
		c.Net = "tcp" // RFC 7766: retry a truncated answer over TCP
		resp, _, err = c.ExchangeContext(qctx, q, r.server)
	}
	if err != nil {
		return answer{}, &Error{Name: name, Status: StatusDNSFailure, Reason: fmt.Sprintf("%s query to %s failed: %v", dns.TypeToString[qt], r.server, err)}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return answer{}, &Error{Name: name, Status: StatusDNSFailure, Reason: fmt.Sprintf("%s query to %s answered %s", dns.TypeToString[qt], r.server, dns.RcodeToString[resp.Rcode])}
	}
	a := answer{rcode: resp.Rcode, records: resp.Answer}
	r.cache.put(key, a, ttlOf(resp))
	return a, nil
}

// ASCII returns domain in the form DNS knows: an internationalized name
// (RFC 6531 mail) becomes its A-labels ("bücher.example" →
// "xn--bcher-kva.example", RFC 5890); a name that cannot be converted is
// returned unchanged and will simply not be found.
func ASCII(domain string) string {
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		return a
	}
	return domain
}

// ParseLiteral reads an address literal domain, "[192.0.2.1]" or
// "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3).
func ParseLiteral(domain string) (netip.Addr, bool) {
	if len(domain) < 3 || domain[0] != '[' || domain[len(domain)-1] != ']' {
		return netip.Addr{}, false
	}
	inner := domain[1 : len(domain)-1]
	if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
		a, err := netip.ParseAddr(inner[5:])
		return a, err == nil && a.Is6()
	}
	a, err := netip.ParseAddr(inner)
	return a, err == nil && a.Is4()
}

func isIPAddress(name string) bool {
	_, err := netip.ParseAddr(strings.Trim(name, "[]"))
	return err == nil
}
