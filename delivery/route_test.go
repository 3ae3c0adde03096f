package delivery

import (
	"strings"
	"testing"

	"mailq/queue"
	"mailq/smtpproto"
)

func namedRoute(name string, domains ...string) Route {
	return Route{Settings: smtpproto.Settings{Name: name, Domains: domains, Host: "127.0.0.1", Port: 25}}
}

func TestRouterMostSpecificWins(t *testing.T) {
	rt, err := newRouter([]Route{
		namedRoute("default", "*"),
		namedRoute("org", ".example.org"),
		namedRoute("deep", ".b.example.org"),
		namedRoute("exact", "example.org", "Example.COM"),
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ addr, want string }{
		{"a@example.org", "exact"},       // exact beats the suffix
		{"a@EXAMPLE.org", "exact"},       // case-insensitive
		{"a@example.com", "exact"},       // configured in upper case
		{"a@x.example.org", "org"},       // suffix matches subdomains
		{"a@x.b.example.org", "deep"},    // longest suffix wins
		{"a@b.example.org", "org"},       // ".b.example.org" does not match b.example.org itself
		{"a@notexample.org", "default"},  // suffix needs the dot
		{"a@other.net", "default"},       // fallback
		{"\"x@y\"@example.org", "exact"}, // last @ separates the domain
		{"a@example.org.", "exact"},      // trailing root dot
		{"postmaster", "default"},        // no domain: only "*" can take it
		{"a@sub.example.com", "default"}, // exact does not cover subdomains
	}
	for _, tc := range cases {
		r := rt.lookup(tc.addr)
		if r == nil || r.Name() != tc.want {
			got := "<nil>"
			if r != nil {
				got = r.Name()
			}
			t.Errorf("lookup(%q) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestRouterWithoutFallback(t *testing.T) {
	rt, err := newRouter([]Route{namedRoute("only", "example.org")})
	if err != nil {
		t.Fatal(err)
	}
	if r := rt.lookup("a@elsewhere.net"); r != nil {
		t.Fatalf("lookup without a * route found %s", r.Name())
	}
}

func TestRouterRejectsBadTables(t *testing.T) {
	cases := []struct {
		name   string
		routes []Route
		want   string
	}{
		{"duplicate domain", []Route{namedRoute("a", "example.org"), namedRoute("b", "EXAMPLE.org")}, "claimed by routes"},
		{"no domains", []Route{namedRoute("a")}, "serves no domains"},
		{"empty entry", []Route{namedRoute("a", " ")}, "empty domain"},
	}
	for _, tc := range cases {
		_, err := newRouter(tc.routes)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// TestPerRouteTransactions checks that a message with recipients on two
// routes goes to each route in one transaction with all of that route's
// recipients, and that a recipient no route serves bounces with 5.4.4.
func TestPerRouteTransactions(t *testing.T) {
	a, b := newFakeServer(t), newFakeServer(t)
	h := newHarness(t, []Route{
		testRoute("a", a.port(), "a.test", "client.test"),
		testRoute("b", b.port(), ".b.test"),
	}, nil)
	id := h.enqueue(t, "sender@client.test", "ok-1@a.test", "ok-2@x.b.test", "ok-3@a.test", "ok-4@y.b.test", "ok-5@nowhere.test")
	h.start()
	m := h.settled(t, id, 1)
	for _, addr := range []string{"ok-1@a.test", "ok-2@x.b.test", "ok-3@a.test", "ok-4@y.b.test"} {
		if rc := recipientOf(t, m, addr); rc.State != queue.Delivered {
			t.Errorf("%s: %s, want delivered", addr, rc.State)
		}
	}
	rc := recipientOf(t, m, "ok-5@nowhere.test")
	if rc.State != queue.Bounced || rc.LastReply == nil || rc.LastReply.Enhanced != NoRouteStatus {
		t.Errorf("unrouted recipient: %s %+v, want bounced with %s", rc.State, rc.LastReply, NoRouteStatus)
	}
	// One attempt record per route (and the unrouted recipient's own),
	// each naming its route, the server it reached and its recipients.
	byRoute := map[string]queue.Attempt{}
	for _, a := range m.Attempts {
		byRoute[a.Route] = a
	}
	wantRec := map[string]struct {
		remote string
		rcpts  string
	}{
		"a": {a.ln.Addr().String(), "ok-1@a.test ok-3@a.test"},
		"b": {b.ln.Addr().String(), "ok-2@x.b.test ok-4@y.b.test"},
		"":  {"", "ok-5@nowhere.test"},
	}
	if len(m.Attempts) != len(wantRec) {
		t.Errorf("%d attempt records, want %d (one per route): %+v", len(m.Attempts), len(wantRec), m.Attempts)
	}
	for route, w := range wantRec {
		a, ok := byRoute[route]
		if !ok || a.Remote != w.remote || strings.Join(a.Recipients, " ") != w.rcpts {
			t.Errorf("route %q attempt: remote %q recipients %v, want %q %s", route, a.Remote, a.Recipients, w.remote, w.rcpts)
		}
	}
	wantTx := map[*fakeServer][]string{a: {"ok-1@a.test", "ok-3@a.test"}, b: {"ok-2@x.b.test", "ok-4@y.b.test"}}
	for srv, want := range wantTx {
		_, _, msgs := srv.stats()
		var mine []fakeMessage
		for _, fm := range msgs {
			if fm.From == "sender@client.test" {
				mine = append(mine, fm)
			}
		}
		if len(mine) != 1 || strings.Join(mine[0].To, ",") != strings.Join(want, ",") {
			t.Errorf("server got transactions %+v, want one with %v", mine, want)
		}
	}
	d := h.onlyDSN(t, "sender@client.test")
	checkDSN(t, d, "failed", map[string]string{"ok-5@nowhere.test": NoRouteStatus}, "no route")
}

func TestRouteFromReplacesSenderButNeverTheNullSender(t *testing.T) {
	tests := []struct {
		name, from, sender, want string
	}{
		{"no from: the message's own sender", "", "a@example.com", "a@example.com"},
		{"from set: mail.smtp.from wins", "bounce@relay.example", "a@example.com", "bounce@relay.example"},
		{"null sender stays null", "bounce@relay.example", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Route{Settings: smtpproto.Settings{Name: "r", From: tt.from}}
			if got := r.envelopeFrom(tt.sender); got != tt.want {
				t.Errorf("envelopeFrom(%q) = %q, want %q", tt.sender, got, tt.want)
			}
		})
	}
}
