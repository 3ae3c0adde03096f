package delivery

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"mailq/metrics"
	"mailq/queue"
)

// stsServer serves MTA-STS policies over HTTPS with the lab CA, by Host.
type stsServer struct {
	mu       sync.Mutex
	policies map[string]string // domain → policy body
	fetches  map[string]int
	port     int
}

func (lab *mxLab) startSTS(t *testing.T, names ...string) *stsServer {
	s := &stsServer{policies: map[string]string{}, fetches: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain := strings.TrimPrefix(strings.Split(r.Host, ":")[0], "mta-sts.")
		s.mu.Lock()
		body, ok := s.policies[domain]
		s.fetches[domain]++
		s.mu.Unlock()
		if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{lab.leaf(names[0], names[1:]...)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.port = ln.Addr().(*net.TCPAddr).Port
	for _, n := range names {
		lab.dns.Add(t, n+". 300 IN A 127.0.0.1")
	}
	return s
}

func (s *stsServer) set(domain, body string) {
	s.mu.Lock()
	s.policies[domain] = body
	s.mu.Unlock()
}

func (s *stsServer) fetched(domain string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[domain]
}

// TestMXMTASTS: an enforce policy restricts delivery to the MX hosts it
// names, over verified TLS, else defers; a testing policy reports and
// delivers; a policy is fetched once and kept while its TXT id stays,
// refetched when the id changes; a configured [[tls_policy]] wins.
func TestMXMTASTS(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(
		&mxServer{ip: "127.0.0.3", kind: kindTLS, certName: "mx.good.test"},
		&mxServer{ip: "127.0.0.4", kind: kindTLS, certName: "someone.else.test"},
	)
	sts := lab.startSTS(t, "mta-sts.enforce.test", "mta-sts.enforcebad.test", "mta-sts.testing.test", "mta-sts.nopolicy.test", "mta-sts.overridden.test")
	lab.dns.Add(t,
		"mx.good.test. 300 IN A 127.0.0.3",
		"mx.wrongname.test. 300 IN A 127.0.0.4",
		"enforce.test. 300 IN MX 10 mx.wrongname.test.",
		"enforce.test. 300 IN MX 20 mx.good.test.",
		"_mta-sts.enforce.test. 60 IN TXT \"v=STSv1; id=1\"",
		"enforcebad.test. 300 IN MX 10 mx.wrongname.test.",
		"_mta-sts.enforcebad.test. 300 IN TXT \"v=STSv1; id=1\"",
		"testing.test. 300 IN MX 10 mx.wrongname.test.",
		"_mta-sts.testing.test. 300 IN TXT \"v=STSv1; id=1\"",
		"nopolicy.test. 300 IN MX 10 mx.wrongname.test.",
		"_mta-sts.nopolicy.test. 300 IN TXT \"v=STSv1; id=1\"",
		"overridden.test. 300 IN MX 10 mx.wrongname.test.",
		"_mta-sts.overridden.test. 300 IN TXT \"v=STSv1; id=1\"",
	)
	sts.set("enforce.test", "version: STSv1\r\nmode: enforce\r\nmx: mx.good.test\r\nmax_age: 86400\r\n")
	sts.set("enforcebad.test", "version: STSv1\nmode: enforce\nmx: *.wrongname.test\nmax_age: 86400\n")
	sts.set("testing.test", "version: STSv1\nmode: testing\nmx: mx.wrongname.test\nmax_age: 86400\n")
	sts.set("overridden.test", "version: STSv1\nmode: enforce\nmx: mx.wrongname.test\nmax_age: 86400\n")
	h := newHarness(t, []Route{lab.route("direct", nil)}, func(o *Options) {
		lab.options(o)
		o.MX.STS = &STSOptions{CAFile: lab.caFile, HTTPSPort: sts.port}
		o.MX.TLSPolicies = []TLSPolicy{{Domain: "overridden.test", Require: "encrypt"}}
	})
	h.start()

	send := func(t *testing.T, rcpt string) *queue.Message {
		t.Helper()
		lab.takeDials()
		id := h.enqueue(t, "s@client.test", rcpt)
		return h.settled(t, id, 1)
	}
	tests := []struct {
		rcpt   string
		state  queue.RecipientState
		dials  []string
		tls    string
		metric [2]string
	}{
		// mx.wrongname.test is not in the policy: skipped unseen.
		{"a@enforce.test", queue.Delivered, []string{"127.0.0.3"}, "policy mta-sts-enforce", [2]string{"mta-sts-enforce", "tls"}},
		// In the policy, but its certificate is for another name: defer.
		{"a@enforcebad.test", queue.Deferred, []string{"127.0.0.4"}, "", [2]string{"mta-sts-enforce", "failed"}},
		// Testing mode: the failed validation is reported, mail still goes (unverified TLS).
		{"a@testing.test", queue.Delivered, []string{"127.0.0.4", "127.0.0.4"}, "policy mta-sts-testing; MTA-STS testing", [2]string{"mta-sts-testing", "violation"}},
		// Announced but no policy served: as if there were none.
		{"a@nopolicy.test", queue.Delivered, []string{"127.0.0.4"}, "policy opportunistic", [2]string{"opportunistic", "tls"}},
		// [[tls_policy]] beats MTA-STS.
		{"a@overridden.test", queue.Delivered, []string{"127.0.0.4"}, "policy configured-encrypt", [2]string{"configured-encrypt", "tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			before := testutil.ToFloat64(metrics.TLSPolicy.WithLabelValues(tt.metric[0], tt.metric[1]))
			m := send(t, tt.rcpt)
			rc := recipientOf(t, m, tt.rcpt)
			if rc.State != tt.state {
				t.Fatalf("%s: %s %+v, want %s", tt.rcpt, rc.State, rc.LastReply, tt.state)
			}
			lab.checkDials(t, tt.dials...)
			if !strings.Contains(m.Attempts[0].TLS, tt.tls) {
				t.Errorf("attempt TLS %q lacks %q", m.Attempts[0].TLS, tt.tls)
			}
			if after := testutil.ToFloat64(metrics.TLSPolicy.WithLabelValues(tt.metric[0], tt.metric[1])); after < before+1 {
				t.Errorf("mailq_tls_policy_total{%s,%s} %v → %v, want +1", tt.metric[0], tt.metric[1], before, after)
			}
		})
	}
	if n := sts.fetched("overridden.test"); n != 0 {
		t.Errorf("policy of a domain with a [[tls_policy]] fetched %d times, want 0", n)
	}

	// Cached while the id stays, even after the TXT's TTL; refetched when it changes.
	send(t, "b@enforce.test")
	h.clock.Advance(2 * time.Minute)
	send(t, "c@enforce.test")
	if n := sts.fetched("enforce.test"); n != 1 {
		t.Fatalf("policy fetched %d times with an unchanged id, want 1", n)
	}
	sts.set("enforce.test", "version: STSv1\nmode: enforce\nmx: mx.wrongname.test\nmax_age: 86400\n")
	lab.dns.Replace(t, "_mta-sts.enforce.test. 60 IN TXT \"v=STSv1; id=2\"")
	h.clock.Advance(2 * time.Minute)
	m := send(t, "d@enforce.test")
	if n := sts.fetched("enforce.test"); n != 2 {
		t.Fatalf("policy fetched %d times after the id changed, want 2", n)
	}
	// The new policy names only mx.wrongname.test, whose certificate fails.
	if rc := recipientOf(t, m, "d@enforce.test"); rc.State != queue.Deferred {
		t.Errorf("after the policy change: %s, want deferred", rc.State)
	}
}
