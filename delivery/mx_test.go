package delivery

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"mailq/metrics"
	"mailq/queue"
)

// TestMXPreferenceFallbackAndDownMemory: the exchangers are tried in
// preference order; a refused connection and a 421 greeting each move on
// to the next host (IPv6 included); the refusing host is then remembered
// as down, so the next message skips it until its time is up.
func TestMXPreferenceFallbackAndDownMemory(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(
		&mxServer{ip: "127.0.0.2", kind: kindRefuse},
		&mxServer{ip: "127.0.0.3", kind: kindGreet421},
		&mxServer{ip: "::1", kind: kindAccept},
	)
	lab.dns.Add(t,
		"pref.test. 300 IN MX 30 mx3.pref.test.",
		"pref.test. 300 IN MX 10 mx1.pref.test.",
		"pref.test. 300 IN MX 20 mx2.pref.test.",
		"mx1.pref.test. 300 IN A 127.0.0.2",
		"mx2.pref.test. 300 IN A 127.0.0.3",
		"mx3.pref.test. 300 IN AAAA ::1",
	)
	// A second listener on 127.0.0.2 would make it reachable; make sure
	// it refuses (something else might hold the port there).
	h := newHarness(t, []Route{lab.route("prefroute", nil)}, lab.options)
	countBefore, sumBefore := attemptDurations(t, "prefroute")
	h.start()

	id := h.enqueue(t, "s@client.test", "a@pref.test", "b@PREF.test")
	m := h.settled(t, id, 1)
	for _, rc := range m.Recipients {
		if rc.State != queue.Delivered {
			t.Fatalf("%s: %s %+v", rc.Address, rc.State, rc.LastReply)
		}
	}
	want := []string{lab.addr("127.0.0.2"), lab.addr("127.0.0.3"), lab.addr("::1")}
	if got := lab.takeDials(); !reflect.DeepEqual(got, want) {
		t.Fatalf("dialled %v, want %v (preference order, next host after refusal and 421)", got, want)
	}
	a := m.Attempts[0]
	if a.Remote != "mx3.pref.test["+lab.addr("::1")+"]" || a.Route != "prefroute" {
		t.Errorf("attempt remote %q route %q, want the MX name and its IPv6 address", a.Remote, a.Route)
	}
	if !strings.Contains(a.TLS, "policy opportunistic") {
		t.Errorf("attempt TLS %q does not name the policy", a.TLS)
	}
	// The attempt is timed (mailq_attempt_duration_seconds, observed
	// just after the outcome is recorded).
	waitFor(t, "the attempt's duration in mailq_attempt_duration_seconds", func() bool {
		count, sum := attemptDurations(t, "prefroute")
		return count == countBefore+1 && sum > sumBefore
	})
	if n, _ := lab.servers["::1"].stats(); n != 1 {
		t.Errorf("::1 accepted %d connections, want 1 (both recipients in one transaction)", n)
	}

	// The refusing host is down now: the next message goes to mx2 first.
	id2 := h.enqueue(t, "s@client.test", "c@pref.test")
	h.settled(t, id2, 1)
	want = []string{lab.addr("127.0.0.3")}
	if got := lab.takeDials(); !reflect.DeepEqual(got, want) {
		// ::1 is reused from the pool, so it is not dialled again.
		t.Fatalf("second message dialled %v, want %v (127.0.0.2 skipped as down, ::1 reused)", got, want)
	}
	// After the down time (5m) it is tried again.
	h.clock.Advance(5*time.Minute + time.Second)
	id3 := h.enqueue(t, "s@client.test", "d@pref.test")
	h.settled(t, id3, 1)
	if got := lab.takeDials(); len(got) == 0 || got[0] != lab.addr("127.0.0.2") {
		t.Fatalf("after the down time dialled %v, want 127.0.0.2 first", got)
	}
}

// TestMXLookupOutcomes: what DNS says decides before any connection.
func TestMXLookupOutcomes(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(&mxServer{ip: "127.0.0.2", kind: kindAccept})
	lab.dns.Add(t,
		"implicit.test. 300 IN A 127.0.0.2",
		"nullmx.test. 300 IN MX 0 .",
		"alias.test. 300 IN CNAME implicit.test.",
		"cnamemx.test. 300 IN MX 10 mx.cnamemx.test.",
		"mx.cnamemx.test. 300 IN CNAME implicit.test.",
		"noaddr.test. 300 IN MX 10 mx.noaddr.test.",
		"mx.noaddr.test. 300 IN TXT \"no address\"",
	)
	lab.dns.Rcode("servfail.test", 2) // SERVFAIL
	h := newHarness(t, []Route{lab.route("direct", nil)}, lab.options)
	h.start()
	tests := []struct {
		rcpt     string
		state    queue.RecipientState
		enhanced string
	}{
		{"a@implicit.test", queue.Delivered, "2.0.0"}, // no MX: the domain's own address
		{"a@alias.test", queue.Delivered, "2.0.0"},    // the domain is an alias
		{"a@cnamemx.test", queue.Delivered, "2.0.0"},  // the MX target is an alias (followed)
		{"a@[127.0.0.2]", queue.Delivered, "2.0.0"},   // an address literal: no lookup
		{"a@nullmx.test", queue.Bounced, "5.1.10"},    // RFC 7505
		{"a@nosuch.test", queue.Bounced, "5.1.2"},     // NXDOMAIN
		{"a@servfail.test", queue.Deferred, "4.4.3"},  // resolver failure: retry
		{"a@noaddr.test", queue.Deferred, "4.4.4"},    // MX without address: retry
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			lab.takeDials()
			id := h.enqueue(t, "s@client.test", tt.rcpt)
			m := h.settled(t, id, 1)
			rc := recipientOf(t, m, tt.rcpt)
			if rc.State != tt.state || rc.LastReply == nil || !strings.HasPrefix(rc.LastReply.Enhanced, tt.enhanced) {
				t.Fatalf("%s: %s %+v, want %s %s", tt.rcpt, rc.State, rc.LastReply, tt.state, tt.enhanced)
			}
			if tt.state != queue.Delivered {
				if d := lab.takeDials(); len(d) != 0 {
					t.Errorf("dialled %v for a domain DNS ruled out", d)
				}
			}
		})
	}
}

// TestMXMaxTriesAndAllDown: one attempt connects to at most MaxTries
// addresses; hosts that failed are skipped by the next attempt, and when
// every exchanger is down the mail is deferred without a connection.
func TestMXMaxTriesAndAllDown(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(
		&mxServer{ip: "127.0.0.9", kind: kindAccept}, // holds the lab port; no MX points here
		&mxServer{ip: "127.0.0.2", kind: kindRefuse},
		&mxServer{ip: "127.0.0.3", kind: kindRefuse},
		&mxServer{ip: "127.0.0.4", kind: kindRefuse},
	)
	lab.dns.Add(t,
		"down.test. 300 IN MX 10 mx1.down.test.",
		"down.test. 300 IN MX 20 mx2.down.test.",
		"down.test. 300 IN MX 30 mx3.down.test.",
		"mx1.down.test. 300 IN A 127.0.0.2",
		"mx2.down.test. 300 IN A 127.0.0.3",
		"mx3.down.test. 300 IN A 127.0.0.4",
	)
	h := newHarness(t, []Route{lab.route("direct", func(m *MXRoute) { m.MaxTries = 2 })}, lab.options)
	h.start()
	steps := []struct {
		dials    []string
		enhanced string
	}{
		{[]string{"127.0.0.2", "127.0.0.3"}, "4.4.1"}, // MaxTries = 2: mx3 is not reached
		{[]string{"127.0.0.4"}, "4.4.1"},              // mx1 and mx2 are down: straight to mx3
		{nil, "4.4.1"},                                // all down: no connection at all
	}
	for i, st := range steps {
		id := h.enqueue(t, "s@client.test", fmt.Sprintf("u%d@down.test", i))
		m := h.settled(t, id, 1)
		rc := m.Recipients[0]
		if rc.State != queue.Deferred || rc.LastReply == nil || rc.LastReply.Enhanced != st.enhanced {
			t.Fatalf("message %d: %s %+v, want deferred %s", i, rc.State, rc.LastReply, st.enhanced)
		}
		lab.checkDials(t, st.dials...)
		if i == 2 && !strings.Contains(rc.LastReply.Text, "marked down") {
			t.Errorf("all-down deferral says %q, want it to name the down hosts", rc.LastReply.Text)
		}
	}
}

// attemptDurations reads the route's mailq_attempt_duration_seconds.
func attemptDurations(t *testing.T, route string) (uint64, float64) {
	var m dto.Metric
	if err := metrics.AttemptDuration.WithLabelValues(route).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}
