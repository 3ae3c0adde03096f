package delivery

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailq/queue"
)

// startDnsmasq runs Debian's dnsmasq on 127.0.0.1:<free port>, serving
// only what args say (no upstream, no /etc/hosts), and returns its address.
func startDnsmasq(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Fatalf("install dnsmasq-base (see .ci/install-peers): %v", err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for try := 0; try < 10; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		var stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{
			"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
			"--listen-address=127.0.0.1", "--bind-interfaces", fmt.Sprintf("--port=%d", port),
			"--pid-file=", "--user=" + me.Username, "--log-facility=-",
		}, args...)...)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		probe := new(dns.Msg)
		probe.SetQuestion("probe.", dns.TypeA)
		client := &dns.Client{Timeout: 200 * time.Millisecond}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				if strings.Contains(stderr.String(), "in use") {
					goto next
				}
				t.Fatalf("dnsmasq exited: %s", stderr.String())
			default:
			}
			if _, _, err := client.Exchange(probe, addr); err == nil { // any answer: it is serving
				t.Cleanup(func() { cmd.Process.Kill(); <-exited })
				return addr
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatalf("dnsmasq did not answer on %s: %s", addr, stderr.String())
	next:
	}
	t.Fatal("dnsmasq found no free port")
	return ""
}

// TestMXThroughDnsmasq resolves through Debian's dnsmasq: MX preference,
// an unreachable first exchanger, IPv6, and NXDOMAIN inside a local zone.
func TestMXThroughDnsmasq(t *testing.T) {
	lab := newMXLab(t)
	lab.listen(
		&mxServer{ip: "127.0.0.2", kind: kindRefuse},
		&mxServer{ip: "::1", kind: kindAccept},
	)
	server := startDnsmasq(t,
		"--local=/dnsmasq.test/",
		"--mx-host=dnsmasq.test,mx1.dnsmasq.test,10",
		"--mx-host=dnsmasq.test,mx2.dnsmasq.test,20",
		"--host-record=mx1.dnsmasq.test,127.0.0.2",
		"--host-record=mx2.dnsmasq.test,::1",
	)
	route := lab.route("direct", nil)
	route.MX.Resolver = server
	h := newHarness(t, []Route{route}, lab.options)
	h.start()
	id := h.enqueue(t, "s@client.test", "a@dnsmasq.test", "b@nosuch.dnsmasq.test")
	m := h.settled(t, id, 1)
	if rc := recipientOf(t, m, "a@dnsmasq.test"); rc.State != queue.Delivered {
		t.Fatalf("a@dnsmasq.test: %s %+v", rc.State, rc.LastReply)
	}
	if rc := recipientOf(t, m, "b@nosuch.dnsmasq.test"); rc.State != queue.Bounced || rc.LastReply == nil || rc.LastReply.Enhanced != "5.1.2" {
		t.Fatalf("b@nosuch.dnsmasq.test: %s %+v, want bounced 5.1.2", rc.State, rc.LastReply)
	}
	want := []string{lab.addr("127.0.0.2"), lab.addr("::1")}
	if got := lab.takeDials(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("dialled %v, want %v", got, want)
	}
	// One attempt record per domain's part: a@'s names the MX it reached.
	var got string
	for _, a := range m.Attempts {
		if len(a.Recipients) == 1 && a.Recipients[0] == "a@dnsmasq.test" {
			got = a.Remote
		}
	}
	if !strings.Contains(got, "mx2.dnsmasq.test[") {
		t.Errorf("attempt remote %q, want mx2.dnsmasq.test", got)
	}
}
