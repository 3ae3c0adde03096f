package mx

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailq/mx/dnstest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// reverse is a deterministic "shuffle" so tests can see that equal
// preferences are reordered and unequal ones are not.
func reverse(n int, swap func(i, j int)) {
	for i := 0; i < n/2; i++ {
		swap(i, n-1-i)
	}
}

func testZone(t *testing.T) *dnstest.Server {
	s := dnstest.Start(t)
	s.Add(t,
		"pref.test. 300 IN MX 20 c.pref.test.",
		"pref.test. 300 IN MX 10 a.pref.test.",
		"pref.test. 300 IN MX 10 b.pref.test.",
		"pref.test. 300 IN MX 30 d.pref.test.",
		"implicit.test. 300 IN A 127.0.0.2",
		"implicit.test. 300 IN AAAA ::1",
		"nullmx.test. 300 IN MX 0 .",
		"bare.test. 300 IN TXT \"no mail here\"",
		"alias.test. 300 IN CNAME pref.test.",
		"numeric.test. 300 IN MX 10 127.0.0.2.",
		"mixed.test. 300 IN MX 10 127.0.0.2.",
		"mixed.test. 300 IN MX 20 mx.mixed.test.",
		"mx.mixed.test. 300 IN A 127.0.0.3",
		"cnamemx.test. 300 IN MX 10 mx.cnamemx.test.",
		"mx.cnamemx.test. 300 IN CNAME real.cnamemx.test.",
		"real.cnamemx.test. 300 IN A 127.0.0.3",
		"dual.test. 300 IN A 127.0.0.2",
		"dual.test. 300 IN A 127.0.0.3",
		"dual.test. 300 IN AAAA ::1",
		"xn--bcher-kva.test. 300 IN MX 10 mx.xn--bcher-kva.test.",
	)
	s.Rcode("servfail.test", dns.RcodeServerFailure)
	s.Rcode("refused.test", dns.RcodeRefused)
	s.Rcode("silent.test", dnstest.Drop)
	return s
}

func TestMailHosts(t *testing.T) {
	srv := testZone(t)
	r, err := New(Options{Server: srv.Addr, Timeout: 300 * time.Millisecond, Shuffle: reverse})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain     string
		want       []Host
		wantStatus string
	}{
		// RFC 5321 §5.1: lowest preference first; equal ones shuffled
		// (reverse of the served order here).
		{domain: "pref.test", want: []Host{{Name: "b.pref.test", Preference: 10}, {Name: "a.pref.test", Preference: 10}, {Name: "c.pref.test", Preference: 20}, {Name: "d.pref.test", Preference: 30}}},
		{domain: "PREF.test.", want: []Host{{Name: "b.pref.test", Preference: 10}, {Name: "a.pref.test", Preference: 10}, {Name: "c.pref.test", Preference: 20}, {Name: "d.pref.test", Preference: 30}}},
		{domain: "alias.test", want: []Host{{Name: "b.pref.test", Preference: 10}, {Name: "a.pref.test", Preference: 10}, {Name: "c.pref.test", Preference: 20}, {Name: "d.pref.test", Preference: 30}}},
		{domain: "implicit.test", want: []Host{{Name: "implicit.test", Implicit: true}}},
		{domain: "Bücher.test", want: []Host{{Name: "mx.xn--bcher-kva.test", Preference: 10}}}, // RFC 6531 mail: A-labels for DNS
		{domain: "mixed.test", want: []Host{{Name: "mx.mixed.test", Preference: 20}}},
		{domain: "[127.0.0.2]", want: []Host{{Name: "[127.0.0.2]", Literal: netip.MustParseAddr("127.0.0.2")}}},
		{domain: "[IPv6:::1]", want: []Host{{Name: "[ipv6:::1]", Literal: netip.MustParseAddr("::1")}}},
		{domain: "nullmx.test", wantStatus: StatusNullMX},
		{domain: "nosuch.test", wantStatus: StatusNoDomain},
		{domain: "bare.test", wantStatus: StatusNoDomain},
		{domain: "numeric.test", wantStatus: StatusUnusableMX},
		{domain: "servfail.test", wantStatus: StatusDNSFailure},
		{domain: "refused.test", wantStatus: StatusDNSFailure},
		{domain: "silent.test", wantStatus: StatusDNSFailure},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := r.MailHosts(context.Background(), tt.domain)
			if tt.wantStatus != "" {
				var me *Error
				if !errors.As(err, &me) || me.Status != tt.wantStatus {
					t.Fatalf("MailHosts(%s) = %v, %v; want *Error with status %s", tt.domain, got, err, tt.wantStatus)
				}
				if me.Permanent() != (tt.wantStatus[0] == '5') {
					t.Errorf("Permanent() = %v for %s", me.Permanent(), me.Status)
				}
				return
			}
			if err != nil {
				t.Fatalf("MailHosts(%s): %v", tt.domain, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MailHosts(%s) =\n %+v\nwant\n %+v", tt.domain, got, tt.want)
			}
		})
	}
}

func TestEqualPreferencesAreShuffled(t *testing.T) {
	srv := testZone(t)
	r, err := New(Options{Server: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	firsts := map[string]int{}
	for i := 0; i < 200; i++ {
		hosts, err := r.MailHosts(context.Background(), "pref.test")
		if err != nil {
			t.Fatal(err)
		}
		firsts[hosts[0].Name]++
		if hosts[2].Name != "c.pref.test" || hosts[3].Name != "d.pref.test" {
			t.Fatalf("unequal preferences reordered: %+v", hosts)
		}
	}
	if firsts["a.pref.test"] == 0 || firsts["b.pref.test"] == 0 || len(firsts) != 2 {
		t.Errorf("first host over 200 lookups: %v; want both a and b, nothing else", firsts)
	}
}

func TestAddresses(t *testing.T) {
	srv := testZone(t)
	r, err := New(Options{Server: srv.Addr, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host       string
		want       []string
		wantStatus string
	}{
		{host: "dual.test", want: []string{"::1", "127.0.0.2", "127.0.0.3"}}, // families alternate, IPv6 first
		{host: "mx.cnamemx.test", want: []string{"127.0.0.3"}},               // an MX target that is an alias is followed
		{host: "[127.0.0.9]", want: []string{"127.0.0.9"}},
		{host: "bare.test", want: nil},
		{host: "nosuch.test", wantStatus: StatusNoDomain},
		{host: "servfail.test", wantStatus: StatusDNSFailure},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := r.Addresses(context.Background(), tt.host)
			if tt.wantStatus != "" {
				var me *Error
				if !errors.As(err, &me) || me.Status != tt.wantStatus {
					t.Fatalf("Addresses(%s) = %v, %v; want status %s", tt.host, got, err, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("Addresses(%s) = %v, want %v", tt.host, s, tt.want)
			}
		})
	}
}

func TestCacheHonoursTTL(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Add(t, "ttl.test. 60 IN MX 10 mx.ttl.test.", "short.test. 0 IN MX 10 mx.short.test.")
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r, err := New(Options{Server: srv.Addr, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	look := func(d string) {
		t.Helper()
		if _, err := r.MailHosts(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	look("ttl.test")
	look("ttl.test")
	clk.Advance(59 * time.Second)
	look("ttl.test")
	if n := srv.Queries("MX", "ttl.test"); n != 1 {
		t.Fatalf("%d MX queries within the 60s TTL, want 1", n)
	}
	clk.Advance(2 * time.Second)
	look("ttl.test")
	if n := srv.Queries("MX", "ttl.test"); n != 2 {
		t.Fatalf("%d MX queries after the TTL ran out, want 2", n)
	}
	// TTL 0 is still kept for a second (minCacheTTL), not forever.
	look("short.test")
	look("short.test")
	clk.Advance(time.Second)
	look("short.test")
	if n := srv.Queries("MX", "short.test"); n != 2 {
		t.Fatalf("TTL 0: %d queries, want 2", n)
	}
	// Resolver failures are not cached.
	srv.Rcode("flaky.test", dns.RcodeServerFailure)
	if _, err := r.MailHosts(context.Background(), "flaky.test"); err == nil {
		t.Fatal("SERVFAIL did not fail")
	}
	srv.Rcode("flaky.test", dns.RcodeSuccess)
	srv.Add(t, "flaky.test. 60 IN MX 10 mx.flaky.test.")
	look("flaky.test")
}

func TestCacheIsBounded(t *testing.T) {
	c := newCache(3, time.Now)
	for _, k := range []string{"a", "b", "c"} {
		c.put(k, answer{}, time.Minute)
	}
	c.get("a") // a is now the most recently used
	c.put("d", answer{}, time.Minute)
	if c.len() != 3 {
		t.Fatalf("cache holds %d, want 3", c.len())
	}
	if _, ok := c.get("b"); ok {
		t.Error("least recently used entry b survived")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("entry %s was evicted", k)
		}
	}
}

func TestDownListBacksOffExponentially(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d := NewDownList(0, 0, clk.Now)
	if d.IsDown("127.0.0.2:25") {
		t.Fatal("fresh host is down")
	}
	var waits []time.Duration
	for i := 0; i < 6; i++ {
		waits = append(waits, d.MarkDown("127.0.0.2:25"))
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	if !reflect.DeepEqual(waits, want) {
		t.Fatalf("waits = %v, want %v", waits, want)
	}
	if !d.IsDown("127.0.0.2:25") || d.IsDown("127.0.0.3:25") {
		t.Fatal("down state not per key")
	}
	clk.Advance(time.Hour)
	if d.IsDown("127.0.0.2:25") {
		t.Fatal("still down after its wait")
	}
	d.MarkUp("127.0.0.2:25")
	if w := d.MarkDown("127.0.0.2:25"); w != 5*time.Minute {
		t.Fatalf("after MarkUp the wait restarts at 5m, got %v", w)
	}
}
