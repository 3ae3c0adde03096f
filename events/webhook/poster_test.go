package webhook_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/events"
	"mailq/events/eventstest"
	"mailq/events/webhook"
	"mailq/queue"
	"mailq/queue/boltstore"
)

func openStore(t testing.TB) queue.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{Journal: events.Journal, MessageIDOf: events.MessageIDOf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// makeTraffic enqueues n messages of two recipients each and records one
// attempt for each: the first recipient delivered, the second deferred on
// even messages and bounced on odd ones. It returns how many events that
// made (one queued and one outcome per recipient).
func makeTraffic(t *testing.T, s queue.Store, n int) int {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf("Message-ID: <m%d@test>\r\nSubject: x\r\n\r\nhello\r\n", i)
		_, err := s.Enqueue(queue.Envelope{Sender: "app@example.com", EnvID: fmt.Sprintf("env-%d", i),
			Recipients: []queue.RecipientSpec{{Address: fmt.Sprintf("a%d@example.org", i)}, {Address: fmt.Sprintf("b%d@example.org", i)}}},
			strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
	}
	leases, err := s.Lease(time.Now().Add(time.Second), n)
	if err != nil || len(leases) != n {
		t.Fatalf("lease: %d leases, %v", len(leases), err)
	}
	for i, l := range leases {
		second := queue.Outcome{Recipient: l.Recipients[1], Decision: queue.DecideRetry, RetryAt: time.Now().Add(time.Hour),
			Reply: &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "busy"}}
		if i%2 == 1 {
			second = queue.Outcome{Recipient: l.Recipients[1], Decision: queue.DecideBounce,
				Reply: &queue.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}}
		}
		err := s.RecordOutcome(l, queue.Attempt{Route: "r", Remote: "127.0.0.1:25", TLS: "TLS1.3"}, []queue.Outcome{
			{Recipient: l.Recipients[0], Decision: queue.DecideDelivered, Reply: &queue.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}},
			second,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return 4 * n
}

func runPoster(t testing.TB, opts webhook.Options) (*webhook.Poster, func()) {
	t.Helper()
	if opts.RetryInitial == 0 {
		opts.RetryInitial, opts.RetryMax = 10*time.Millisecond, 100*time.Millisecond
	}
	opts.Logger = zerolog.Nop()
	p, err := webhook.NewPoster(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.Run(ctx); err != nil {
			t.Errorf("poster: %v", err)
		}
	}()
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	// A webhook seen for the first time starts at the end of the log:
	// traffic made before it runs is not posted.
	eventually(t, func() bool {
		for _, st := range p.Status() {
			if !st.Running {
				return false
			}
		}
		return true
	})
	return p, stop
}

func checkClean(t *testing.T, r *eventstest.Receiver) {
	t.Helper()
	for _, p := range r.Problems() {
		t.Errorf("receiver: %s", p)
	}
	for _, p := range r.OrderProblems() {
		t.Errorf("order: %s", p)
	}
}

// TestPosterPostsEveryEventSignedInOrder: a plain HTTP receiver taking
// every type and an HTTPS one (certificate from a test CA) taking only
// bounces and deliveries get exactly their events, each signed, in order
// per message, with every field the event model promises.
func TestPosterPostsEveryEventSignedInOrder(t *testing.T) {
	s := openStore(t)
	plain := eventstest.NewHTTP(t, []byte("plain-secret"))
	secure := eventstest.NewHTTPS(t, []byte("tls-secret"))
	_, _ = runPoster(t, webhook.Options{Store: s, Webhooks: []webhook.Endpoint{
		{Name: "plain", URL: plain.URL, Secret: plain.Secret},
		{Name: "secure", URL: secure.URL, Secret: secure.Secret, TLS: tlsTo(secure),
			Events: map[events.Type]bool{events.Bounced: true, events.Delivered: true}},
	}})
	const n = 40
	total := makeTraffic(t, s, n)
	plain.WaitFor(t, 30*time.Second, "every event", func(m map[uint64]events.Event) bool { return len(m) == total })
	secure.WaitFor(t, 30*time.Second, "bounces and deliveries", func(m map[uint64]events.Event) bool { return len(m) == n+n/2 })
	checkClean(t, plain)
	checkClean(t, secure)

	count := map[events.Type]int{}
	byID, dups := plain.Distinct()
	for _, e := range byID {
		count[e.Type]++
		if e.Sender != "app@example.com" || !strings.HasPrefix(e.EnvID, "env-") || !strings.HasPrefix(e.MessageID, "<m") || e.QueueID == "" {
			t.Errorf("event %d lacks message fields: %+v", e.ID, e)
		}
		if e.Type != events.Queued && (e.Route != "r" || e.Remote != "127.0.0.1:25" || e.TLS != "TLS1.3" || e.Attempt != 1 || e.Reply == nil) {
			t.Errorf("outcome event %d lacks attempt fields: %+v", e.ID, e)
		}
		if e.Type == events.Bounced && (e.Reply.Code != 550 || e.Reply.Enhanced != "5.1.1") {
			t.Errorf("bounce event %d reply = %+v", e.ID, e.Reply)
		}
	}
	want := map[events.Type]int{events.Queued: 2 * n, events.Delivered: n, events.Deferred: n / 2, events.Bounced: n / 2}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("event types = %v, want %v", count, want)
	}
	if dups != 0 {
		t.Errorf("%d duplicate posts without any failure", dups)
	}
	for _, e := range secure.Received() {
		if e.Type != events.Bounced && e.Type != events.Delivered {
			t.Errorf("secure webhook got a %s event, outside its filter", e.Type)
		}
	}
}

func tlsTo(r *eventstest.Receiver) *tls.Config {
	return &tls.Config{RootCAs: r.CA, MinVersion: tls.VersionTLS12}
}

// TestPosterRetriesUntilReceiverComesBack: with the receiver answering 503
// the events wait (failures counted and shown), and once it is back every
// event arrives, in order per message.
func TestPosterRetriesUntilReceiverComesBack(t *testing.T) {
	s := openStore(t)
	r := eventstest.NewHTTP(t, []byte("k"))
	r.SetDown(true)
	p, _ := runPoster(t, webhook.Options{Store: s, Webhooks: []webhook.Endpoint{{Name: "app", URL: r.URL, Secret: r.Secret, Workers: 3}}})
	total := makeTraffic(t, s, 20)
	deadline := time.Now().Add(20 * time.Second)
	for r.Refused() < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := p.Status()[0]
	if st.Failures == 0 || st.LastError == "" || !strings.Contains(st.LastError, "503") || st.Pending != uint64(total) || st.Posted != 0 {
		t.Fatalf("while down, status = %+v; want failures with a 503 error, %d pending, none posted", st, total)
	}
	r.SetDown(false)
	r.WaitFor(t, 30*time.Second, "every event after the receiver came back", func(m map[uint64]events.Event) bool { return len(m) == total })
	checkClean(t, r)
	eventually(t, func() bool { st := p.Status()[0]; return st.Pending == 0 && st.InFlight == 0 })
}

// TestPosterGivesUpAfterMaxAge: an event older than max_age is dropped,
// counted as expired, and the cursor moves past it.
func TestPosterGivesUpAfterMaxAge(t *testing.T) {
	s := openStore(t)
	r := eventstest.NewHTTP(t, nil)
	r.SetDown(true)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p, _ := runPoster(t, webhook.Options{Store: s, Now: clock, Webhooks: []webhook.Endpoint{{Name: "app", URL: r.URL, MaxAge: time.Hour}}})
	total := makeTraffic(t, s, 3)
	eventually(t, func() bool { return r.Refused() >= 3 })
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	eventually(t, func() bool { st := p.Status()[0]; return st.Expired == int64(total) && st.Pending == 0 })
	if len(r.Received()) != 0 {
		t.Errorf("the receiver got %d events while down", len(r.Received()))
	}
}

// TestPosterResumesAtItsCursor: a restarted poster posts only what the
// previous one had not had acknowledged.
func TestPosterResumesAtItsCursor(t *testing.T) {
	s := openStore(t)
	r := eventstest.NewHTTP(t, nil)
	hooks := []webhook.Endpoint{{Name: "app", URL: r.URL}}
	first := makeTraffic(t, s, 5) // before the webhook existed: never posted
	p, stop := runPoster(t, webhook.Options{Store: s, Webhooks: hooks})
	eventually(t, func() bool { return p.Status()[0].Cursor == uint64(first) })
	second := makeTraffic(t, s, 5)
	r.WaitFor(t, 20*time.Second, "the second batch", func(m map[uint64]events.Event) bool { return len(m) == second })
	// The receiver records an event before answering: wait until the
	// poster has its answers too, or stopping would (rightly) repeat one.
	eventually(t, func() bool { return p.Status()[0].Pending == 0 })
	stop()
	third := makeTraffic(t, s, 5)
	runPoster(t, webhook.Options{Store: s, Webhooks: hooks})
	r.WaitFor(t, 20*time.Second, "the third batch", func(m map[uint64]events.Event) bool { return len(m) == second+third })
	byID, dups := r.Distinct()
	if dups != 0 {
		t.Errorf("%d events posted twice after a clean restart", dups)
	}
	for id := range byID {
		if id <= uint64(first) {
			t.Errorf("event %d, from before the webhook was configured, was posted", id)
		}
	}
}

func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
