package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"mailq/mx"
	"mailq/policy"
	"mailq/smtpproto"
)

// deliverMX makes one attempt for the recipients of one domain on an MX
// route: resolve the exchangers, try them in order (at most MaxTries
// addresses, skipping hosts marked down), and send over the first
// connection that opens.
func (e *Engine) deliverMX(ctx context.Context, p *part) (res partResult) {
	res = partResult{route: p.route, start: e.opts.Now(), recipients: recipientAddrs(p.recipients)}
	began := time.Now()
	defer func() { res.duration = time.Since(began) }() // res is the named result: every return gets it
	addrs := make([]string, len(p.recipients))
	for i, rc := range p.recipients {
		addrs[i] = rc.Address
	}
	route := p.route.MX
	resolver, err := e.mx.resolver(route)
	if err != nil {
		res.decisions = decideAll(addrs, policy.Retry, mx.StatusDNSFailure, err.Error())
		return res
	}
	hosts, err := resolver.MailHosts(ctx, p.domain)
	if err != nil {
		res.decisions = dnsDecisions(addrs, err)
		return res
	}
	pol := e.tlsPolicyFor(ctx, p.domain, resolver)
	_, port := p.route.Settings.Endpoint()

	tries, down := 0, 0
	var lastErr, dnsErr error
	var skipped []string
hosts:
	for _, h := range hosts {
		if !pol.allowsMX(h.Name) {
			e.log.Warn().Str("route", p.route.Name()).Str("domain", p.domain).Str("mx", h.Name).Str("tls_policy", pol.name).
				Bool("enforced", !pol.testing).Msg("MX host is not in the domain's MTA-STS policy")
			if !pol.testing {
				countTLS(pol.name, "failed")
				skipped = append(skipped, h.Name+" (not in the MTA-STS policy)")
				continue
			}
			countTLS(pol.name, "violation")
		}
		ips, err := resolver.Addresses(ctx, h.Name)
		if err != nil {
			dnsErr = err
			skipped = append(skipped, h.Name+" (address lookup failed: "+err.Error()+")")
			continue
		}
		if len(ips) == 0 {
			skipped = append(skipped, h.Name+" (no address record)")
			continue
		}
		dest := e.mx.destination(e, h.Name, route)
		for _, ip := range ips {
			if tries >= route.maxTries() {
				break hosts
			}
			remote := netip.AddrPortFrom(ip, uint16(port)).String()
			if e.mx.down.IsDown(remote) {
				down++
				skipped = append(skipped, h.Name+"["+remote+"] (marked down)")
				continue
			}
			tries++
			mc, err := dest.get(ctx, remote+" "+pol.name, func() (*mxConn, error) {
				return e.dialMX(ctx, p.route, h, ip, remote, pol)
			})
			if err != nil {
				lastErr = err
				var ce *smtpproto.ConnectError
				if errors.As(err, &ce) && ctx.Err() == nil {
					wait := e.mx.down.MarkDown(remote)
					e.log.Warn().Str("route", p.route.Name()).Str("mx", h.Name).Str("remote", remote).Err(err).
						Dur("down_for", wait).Msg("MX host unreachable; trying the next one and skipping it meanwhile")
				} else {
					e.log.Warn().Str("route", p.route.Name()).Str("mx", h.Name).Str("remote", remote).Err(err).
						Msg("MX host did not accept the session; trying the next one")
				}
				res.steps = append(res.steps, stepsOfDialError(err)...)
				var ae *smtpproto.AuthError
				if errors.As(err, &ae) || ctx.Err() != nil {
					break hosts // our credentials, or shutdown: another host will not help
				}
				continue
			}
			e.mx.down.MarkUp(remote)
			e.sendMX(ctx, p, dest, mc, &res)
			return res
		}
	}
	switch {
	case lastErr != nil:
		res.decisions = policy.ConnectionFailure(addrs, lastErr)
		res.errText = lastErr.Error()
		var de *smtpproto.DialError
		if errors.As(lastErr, &de) {
			res.transcript = de.Transcript
		}
	case dnsErr != nil && down == 0:
		res.decisions = decideAll(addrs, policy.Retry, mx.StatusDNSFailure,
			fmt.Sprintf("no mail exchanger of %s could be resolved: %s", p.domain, strings.Join(skipped, ", ")))
	case down > 0:
		res.decisions = decideAll(addrs, policy.Retry, "4.4.1",
			fmt.Sprintf("every mail exchanger of %s is marked down after recent connection failures: %s", p.domain, strings.Join(skipped, ", ")))
	default:
		res.decisions = decideAll(addrs, policy.Retry, "4.4.4",
			fmt.Sprintf("no usable mail exchanger for %s: %s", p.domain, strings.Join(skipped, ", ")))
	}
	return res
}

// sendMX sends the part over mc and fills res.
func (e *Engine) sendMX(ctx context.Context, p *part, dest *destination, mc *mxConn, res *partResult) {
	m := p.run.lease.Message
	addrs := make([]string, len(p.recipients))
	env := p.envelope(m)
	for i, rc := range p.recipients {
		addrs[i] = rc.Address
	}
	info := mc.info
	res.remote = info.host + "[" + info.remote + "]"
	res.tls = info.tls + " (policy " + info.policy
	if info.note != "" {
		res.tls += "; " + info.note
	}
	res.tls += ")"
	_, res.nextHopDSN = mc.conn.Extensions()["DSN"]
	transcript := e.opts.DialOptions.Transcript
	if dest.rate != nil {
		if err := dest.rate.Wait(ctx); err != nil {
			dest.put(mc, true, transcript)
			res.decisions = policy.ConnectionFailure(addrs, err)
			return
		}
	}
	body, err := e.store.Body(m.ID)
	if err != nil {
		dest.put(mc, true, transcript)
		res.decisions = policy.ConnectionFailure(addrs, err)
		return
	}
	sent, err := mc.conn.Send(ctx, env, body)
	body.Close()
	// Each message takes its own part of the connection's transcript.
	res.transcript = mc.conn.TakeTranscript()
	if err != nil && !reusableAfter(err) {
		res.errText = err.Error()
	}
	if sent == nil {
		res.decisions = policy.ConnectionFailure(addrs, err)
		dest.put(mc, false, transcript)
		return
	}
	res.decisions = policy.Classify(sent, err)
	res.steps = append(res.steps, stepsOf(sent)...)
	dest.put(mc, reusableAfter(err), transcript)
}

// dialMX opens one connection to ip as host, with the TLS the policy asks:
// a failed STARTTLS steps down to the next level the policy allows, each
// on a new connection (the failed one is unusable).
func (e *Engine) dialMX(ctx context.Context, r *Route, h mx.Host, ip netip.Addr, remote string, pol appliedPolicy) (*mxConn, error) {
	name := h.Name
	if h.Literal.IsValid() {
		name = h.Literal.String()
	}
	opts := e.opts.DialOptions
	opts.Logger = e.log
	opts.ConnectHost = ip.String()
	opts.Transcript = true          // every attempt keeps its transcript
	opts.Hostname = e.opts.Hostname // the EHLO name when the route sets no localhost
	var note string
	levels := pol.levels()
	for i, level := range levels {
		s := mxSettings(r.Settings, name, level)
		conn, err := smtpproto.Dial(ctx, &s, opts)
		var te *smtpproto.TLSError
		if err != nil && errors.As(err, &te) && i+1 < len(levels) && ctx.Err() == nil {
			if pol.testing && level == levelVerify {
				countTLS(pol.name, "violation")
				note = "MTA-STS testing: " + err.Error()
				e.log.Warn().Str("route", r.Name()).Str("mx", name).Str("remote", remote).Err(err).
					Msg("MTA-STS policy (testing mode) not met; delivering without it")
			} else {
				note = "STARTTLS failed, plaintext on a new connection: " + err.Error()
				e.log.Warn().Str("route", r.Name()).Str("mx", name).Str("remote", remote).Err(err).
					Msg("opportunistic STARTTLS failed; retrying the same host in plaintext on a new connection")
			}
			continue
		}
		if err != nil {
			if errors.As(err, &te) {
				countTLS(pol.name, "failed")
			}
			return nil, err
		}
		info := mxConnInfo{host: name, remote: conn.RemoteAddr(), policy: pol.name, note: note, tls: "plaintext"}
		result := "plaintext"
		if v := conn.TLSVersion(); v != "" {
			info.tls = v + " " + conn.TLSCipher()
			result = "tls"
		}
		if note == "" || !pol.testing {
			countTLS(pol.name, result)
		}
		return newMXConn(conn, r.Name(), info), nil
	}
	return nil, errors.New("delivery: no TLS level to try (a bug)")
}

// dnsDecisions turns a failed MX lookup into decisions: bounce on a
// permanent answer (null MX 5.1.10, NXDOMAIN 5.1.2), retry otherwise (4.4.3).
func dnsDecisions(addrs []string, err error) []policy.Decision {
	var me *mx.Error
	if !errors.As(err, &me) {
		return decideAll(addrs, policy.Retry, mx.StatusDNSFailure, err.Error())
	}
	action := policy.Retry
	if me.Permanent() {
		action = policy.Bounce
	}
	return decideAll(addrs, action, me.Status, me.Error())
}

func decideAll(addrs []string, action policy.Action, status, diagnostic string) []policy.Decision {
	out := make([]policy.Decision, len(addrs))
	for i, a := range addrs {
		out[i] = policy.Decision{Recipient: a, Action: action, Status: status, Diagnostic: diagnostic}
	}
	return out
}
