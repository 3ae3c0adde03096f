package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mailq/mx/dnstest"
)

// TestDaemonMXRoute: a route with mx = true, its resolver set in [mx],
// delivers through the daemon to the exchanger DNS names, and `show` says
// which MX and which TLS policy; a null MX domain bounces at once.
func TestDaemonMXRoute(t *testing.T) {
	sink := startOpsSink(t, "mx", true)
	dns := dnstest.Start(t)
	dns.Add(t, "dest.test. 300 IN MX 10 mx.dest.test.", "mx.dest.test. 300 IN A 127.0.0.1", "nomail.test. 300 IN MX 0 .")
	dir := t.TempDir()
	cfg := testConfig(t, dir, fmt.Sprintf(`[mx]
resolver = %q
[[route]]
name = "direct"
domains = ["*"]
mx = true
port = %d
localhost = "client.test"
`, dns.Addr, sink.port))
	d := startDaemon(t, cfg)
	d.waitFor(t, "ready", 30*time.Second)
	keepLogs(d) // the daemon must never block on a full stderr pipe
	delivered := enqueue(t, cfg, "app@client.test", "one@dest.test")
	bounced := enqueue(t, cfg, "app@client.test", "x@nomail.test")
	eventually(t, 30*time.Second, "one@dest.test delivered via MX", func() (bool, string) {
		m := showMessage(t, cfg, delivered)
		return len(sink.messagesTo("one@dest.test")) == 1 && len(m.Attempts) == 1, fmt.Sprintf("%+v", m)
	})
	m := showMessage(t, cfg, delivered)
	if a := m.Attempts[0]; a.Route != "direct" || !strings.HasPrefix(a.Remote, fmt.Sprintf("mx.dest.test[127.0.0.1:%d]", sink.port)) {
		t.Errorf("show: attempt %+v, want route direct to mx.dest.test[127.0.0.1:%d]", a, sink.port)
	}
	out := mustCtl(t, cfg, "", "show", delivered, "--json")
	if !strings.Contains(out, "policy opportunistic") {
		t.Errorf("show --json does not name the TLS policy:\n%s", out)
	}
	eventually(t, 30*time.Second, "x@nomail.test bounced", func() (bool, string) {
		m := showMessage(t, cfg, bounced)
		return len(m.Recipients) == 1 && m.Recipients[0].State == "bounced", fmt.Sprintf("%+v", m)
	})
	if out := mustCtl(t, cfg, "", "show", bounced, "--json"); !strings.Contains(out, "5.1.10") {
		t.Errorf("null MX bounce does not carry 5.1.10:\n%s", out)
	}
	d.stop(t)
}
