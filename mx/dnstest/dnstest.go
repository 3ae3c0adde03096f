// Package dnstest serves DNS answers from records a test sets, in process on
// a loopback port, so resolver code can be tested without the network.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Drop is a "rcode" that makes the server never answer (a timeout).
const Drop = -1

// Server answers from its records like a recursive resolver would: CNAME
// chains inside the zone are chased, a known name without the type is
// NODATA, an unknown one NXDOMAIN, each negative answer with an SOA.
type Server struct {
	Addr string // "127.0.0.1:port", UDP and TCP

	mu      sync.Mutex
	records []dns.RR
	rcodes  map[string]int // lower-case name → forced rcode (or Drop)
	queries map[string]int // "TYPE name" → count
}

// Start serves on 127.0.0.1 (UDP and TCP on one ephemeral port) until the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{rcodes: map[string]int{}, queries: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: listen udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatalf("dnstest: no port free for both UDP and TCP: %v", err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	started := make(chan struct{}, 2)
	udp.NotifyStartedFunc = func() { started <- struct{}{} }
	tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return s
}

// Add adds records in zone-file syntax ("example.test. 300 IN MX 10 mx1.example.test.").
func (s *Server) Add(t testing.TB, lines ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: bad record %q: %v", l, err)
		}
		s.records = append(s.records, rr)
	}
}

// Rcode forces the answer for every query about name (dns.RcodeServerFailure,
// dns.RcodeRefused, Drop...); dns.RcodeSuccess clears it.
func (s *Server) Rcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, name)
		return
	}
	s.rcodes[name] = rcode
}

// Queries is how many queries of qtype ("MX", "A"...) for name arrived.
func (s *Server) Queries(qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[qtype+" "+strings.ToLower(dns.Fqdn(name))]
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		return
	}
	qn := strings.ToLower(q.Question[0].Name)
	qt := q.Question[0].Qtype
	s.mu.Lock()
	s.queries[dns.TypeToString[qt]+" "+qn]++
	rcode, forced := s.rcodes[qn]
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.RecursionAvailable = true
	if forced {
		s.mu.Unlock()
		if rcode == Drop {
			return
		}
		resp.Rcode = rcode
		w.WriteMsg(resp)
		return
	}
	name := qn
	for hop := 0; hop < 10; hop++ {
		var alias string
		for _, rr := range s.records {
			if !strings.EqualFold(rr.Header().Name, name) {
				continue
			}
			if rr.Header().Rrtype == qt {
				resp.Answer = append(resp.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				resp.Answer = append(resp.Answer, rr)
				alias = strings.ToLower(c.Target)
			}
		}
		if alias == "" || qt == dns.TypeCNAME {
			break
		}
		name = alias
	}
	if len(resp.Answer) == 0 {
		exists := false
		for _, rr := range s.records {
			if strings.EqualFold(rr.Header().Name, qn) {
				exists = true
			}
		}
		if !exists {
			resp.Rcode = dns.RcodeNameError
		}
		resp.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: qn, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns.test.", Mbox: "root.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60}}
	}
	s.mu.Unlock()
	w.WriteMsg(resp)
}

// Replace removes every record with the owner name and type of the first
// line, then adds lines.
func (s *Server) Replace(t testing.TB, lines ...string) {
	t.Helper()
	rr, err := dns.NewRR(lines[0])
	if err != nil || rr == nil {
		t.Fatalf("dnstest: bad record %q: %v", lines[0], err)
	}
	s.mu.Lock()
	kept := s.records[:0]
	for _, r := range s.records {
		if !(strings.EqualFold(r.Header().Name, rr.Header().Name) && r.Header().Rrtype == rr.Header().Rrtype) {
			kept = append(kept, r)
		}
	}
	s.records = kept
	s.mu.Unlock()
	s.Add(t, lines...)
}
