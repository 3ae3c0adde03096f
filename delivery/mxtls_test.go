package delivery

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"mailq/metrics"
	"mailq/queue"
)

// TestMXTLSPolicies: opportunistic STARTTLS falls back to plaintext on a
// new connection; a [[tls_policy]] that requires TLS never does, and
// "verify" checks the certificate against the MX name, moving to the next
// MX when it does not match. The attempt record and the metric say which
// policy applied and what came of it.
func TestMXTLSPolicies(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(
		&mxServer{ip: "127.0.0.2", kind: kindBrokenTLS},
		&mxServer{ip: "127.0.0.3", kind: kindTLS, certName: "mx.good.test"},
		&mxServer{ip: "127.0.0.4", kind: kindTLS, certName: "someone.else.test"},
		&mxServer{ip: "::1", kind: kindAccept},
	)
	lab.dns.Add(t,
		"mx.broken.test. 300 IN A 127.0.0.2",
		"mx.good.test. 300 IN A 127.0.0.3",
		"mx.wrongname.test. 300 IN A 127.0.0.4",
		"mx.plain.test. 300 IN AAAA ::1",
		"broken.test. 300 IN MX 10 mx.broken.test.",
		"good.test. 300 IN MX 10 mx.good.test.",
		"encbroken.test. 300 IN MX 10 mx.broken.test.",
		"wrongname.test. 300 IN MX 10 mx.wrongname.test.",
		"wrongname.test. 300 IN MX 20 mx.good.test.",
		"wrongopp.test. 300 IN MX 10 mx.wrongname.test.",
		"plain.test. 300 IN MX 10 mx.plain.test.",
		"notls.test. 300 IN MX 10 mx.good.test.",
		"sub.enc.test. 300 IN MX 10 mx.plain.test.",
	)
	policies := []TLSPolicy{
		{Domain: "encbroken.test", Require: "encrypt"},
		{Domain: "wrongname.test", Require: "verify"},
		{Domain: ".enc.test", Require: "encrypt"},
		{Domain: "notls.test", Require: "none"},
	}
	h := newHarness(t, []Route{lab.route("direct", nil)}, func(o *Options) {
		lab.options(o)
		o.MX.TLSPolicies = policies
	})
	h.start()

	tests := []struct {
		rcpt      string
		state     queue.RecipientState
		dials     []string
		tls       []string // substrings of the attempt's TLS field
		metric    [2]string
		delivered string // server IP that must have the message
	}{
		{rcpt: "a@broken.test", state: queue.Delivered, dials: []string{"127.0.0.2", "127.0.0.2"},
			tls: []string{"plaintext", "policy opportunistic", "STARTTLS failed"}, metric: [2]string{"opportunistic", "plaintext"}},
		{rcpt: "a@good.test", state: queue.Delivered, dials: []string{"127.0.0.3"},
			tls: []string{"TLS1.3 TLS_", "policy opportunistic"}, metric: [2]string{"opportunistic", "tls"}, delivered: "127.0.0.3"},
		{rcpt: "a@encbroken.test", state: queue.Deferred, dials: []string{"127.0.0.2"},
			metric: [2]string{"configured-encrypt", "failed"}},
		{rcpt: "a@wrongname.test", state: queue.Delivered, dials: []string{"127.0.0.4", "127.0.0.3"},
			tls: []string{"TLS1.3", "policy configured-verify"}, metric: [2]string{"configured-verify", "failed"}, delivered: "127.0.0.3"},
		{rcpt: "a@wrongopp.test", state: queue.Delivered, dials: []string{"127.0.0.4"},
			tls: []string{"TLS1.3", "policy opportunistic"}, delivered: "127.0.0.4"},
		{rcpt: "a@sub.enc.test", state: queue.Deferred, dials: []string{"::1"},
			metric: [2]string{"configured-encrypt", "failed"}},
		{rcpt: "a@notls.test", state: queue.Delivered, dials: []string{"127.0.0.3"},
			tls: []string{"plaintext", "policy configured-none"}, metric: [2]string{"configured-none", "plaintext"}},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			var before float64
			if tt.metric[0] != "" {
				before = testutil.ToFloat64(metrics.TLSPolicy.WithLabelValues(tt.metric[0], tt.metric[1]))
			}
			lab.takeDials()
			id := h.enqueue(t, "s@client.test", tt.rcpt)
			m := h.settled(t, id, 1)
			rc := recipientOf(t, m, tt.rcpt)
			if rc.State != tt.state {
				t.Fatalf("%s: %s %+v, want %s", tt.rcpt, rc.State, rc.LastReply, tt.state)
			}
			lab.checkDials(t, tt.dials...)
			for _, s := range tt.tls {
				if !strings.Contains(m.Attempts[0].TLS, s) {
					t.Errorf("attempt TLS %q lacks %q", m.Attempts[0].TLS, s)
				}
			}
			if tt.metric[0] != "" {
				if after := testutil.ToFloat64(metrics.TLSPolicy.WithLabelValues(tt.metric[0], tt.metric[1])); after != before+1 {
					t.Errorf("mailq_tls_policy_total{policy=%q,result=%q} went %v → %v, want +1", tt.metric[0], tt.metric[1], before, after)
				}
			}
			if tt.delivered != "" {
				got := false
				lab.servers[tt.delivered].sink.mu.Lock()
				for _, fm := range lab.servers[tt.delivered].sink.msgs {
					got = got || strings.Join(fm.To, ",") == tt.rcpt
				}
				lab.servers[tt.delivered].sink.mu.Unlock()
				if !got {
					t.Errorf("server %s did not receive the message", tt.delivered)
				}
			}
		})
	}
}

// TestMXTLSPolicyReload: SetTLSPolicies (SIGHUP) applies to the next
// attempt: opportunistic plaintext fallback first, then no fallback once
// the domain requires encryption.
func TestMXTLSPolicyReload(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(&mxServer{ip: "127.0.0.2", kind: kindBrokenTLS})
	lab.dns.Add(t, "reload.test. 300 IN MX 10 mx.reload.test.", "mx.reload.test. 300 IN A 127.0.0.2")
	h := newHarness(t, []Route{lab.route("direct", nil)}, lab.options)
	h.start()
	m := h.settled(t, h.enqueue(t, "s@client.test", "a@reload.test"), 1)
	if rc := m.Recipients[0]; rc.State != queue.Delivered {
		t.Fatalf("before reload: %s %+v, want delivered in plaintext", rc.State, rc.LastReply)
	}
	h.engine.SetTLSPolicies([]TLSPolicy{{Domain: "reload.test", Require: "encrypt"}})
	m = h.settled(t, h.enqueue(t, "s@client.test", "b@reload.test"), 1)
	if rc := m.Recipients[0]; rc.State != queue.Deferred {
		t.Fatalf("after reload: %s %+v, want deferred (TLS required, no plaintext fallback)", rc.State, rc.LastReply)
	}
}
