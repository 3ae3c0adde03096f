package delivery

import (
	"fmt"
	"testing"
	"time"
)

// TestMXPerDestinationLimitAndSharing: two domains with the same exchanger
// share its connections, and no more than DestinationConnections are
// ever open to it, though the route may use every worker.
func TestMXPerDestinationLimitAndSharing(t *testing.T) {
	lab := newMXLab(t)
	srv := &mxServer{ip: "127.0.0.2", kind: kindAccept, delay: 30 * time.Millisecond}
	lab.listen(srv)
	lab.dns.Add(t,
		"one.test. 300 IN MX 10 mx.shared.test.",
		"two.test. 300 IN MX 10 mx.shared.test.",
		"mx.shared.test. 300 IN A 127.0.0.2",
	)
	h := newHarness(t, []Route{lab.route("direct", func(m *MXRoute) { m.DestinationConnections = 2 })}, func(o *Options) {
		lab.options(o)
		o.Workers = 8
	})
	h.start()
	const n = 16
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, string(h.enqueue(t, "s@client.test", fmt.Sprintf("u%d@one.test", i), fmt.Sprintf("u%d@two.test", i))))
	}
	waitFor(t, "every message delivered", func() bool { return srv.sink.delivered() == 2*n })
	accepts, maxOpen := srv.stats()
	if maxOpen != 2 {
		t.Errorf("at most %d connections were open at once, want exactly the limit 2 (8 workers were free)", maxOpen)
	}
	if accepts != 2 {
		t.Errorf("%d connections for %d transactions to one host, want 2 (shared by both domains, reused)", accepts, 2*n)
	}
}

// TestMXRateLimit: rate = "10/s" lets a burst of 10 through, then one
// message every 100ms, per MX host.
func TestMXRateLimit(t *testing.T) {
	lab := newMXLab(t)
	srv := &mxServer{ip: "127.0.0.2", kind: kindAccept}
	lab.listen(srv)
	lab.dns.Add(t, "rate.test. 300 IN MX 10 mx.rate.test.", "mx.rate.test. 300 IN A 127.0.0.2")
	h := newHarness(t, []Route{lab.route("direct", func(m *MXRoute) { m.Rate = Rate{Count: 10, Per: time.Second} })}, lab.options)
	for i := 0; i < 20; i++ {
		h.enqueue(t, "s@client.test", fmt.Sprintf("u%d@rate.test", i))
	}
	began := time.Now()
	h.start()
	waitFor(t, "20 messages delivered", func() bool { return srv.sink.delivered() == 20 })
	// 10 in the burst, 10 more at 10/s: at least ~1s, however fast the machine.
	if took := time.Since(began); took < 900*time.Millisecond {
		t.Errorf("20 messages at 10/s took %v, want at least 0.9s", took)
	}
}
