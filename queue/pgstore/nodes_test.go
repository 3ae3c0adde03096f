package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
	"mailq/queue/pgstore"
	"mailq/queue/pgstore/pgtest"
)

func envelope(rcpts ...string) queue.Envelope {
	env := queue.Envelope{Sender: "s@example.com", Source: "smtp"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: r})
	}
	return env
}

// Two nodes on one database lease concurrently, in a loop, until every
// message is delivered: no message is ever held by both at once (each
// node notes its leases; an overlap is a message leased while another
// lease on it was still open), and every message is delivered exactly
// once.
func TestTwoNodesNeverLeaseTheSameMessageAtOnce(t *testing.T) {
	dsn := migratedDatabase(t)
	nodes := []*pgstore.Store{
		openNode(t, dsn, "a", queue.Options{}, time.Hour),
		openNode(t, dsn, "b", queue.Options{}, time.Hour),
	}
	for _, n := range nodes {
		defer n.Close()
	}
	const messages = 120
	for i := range messages {
		if _, err := nodes[i%2].Enqueue(envelope(fmt.Sprintf("r%d@example.org", i)), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	open := map[queue.ID]string{}   // message → node holding it now
	delivered := map[queue.ID]int{} // message → deliveries
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range 3 { // three workers per node
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ls, err := n.Lease(time.Now(), 4)
					if err != nil {
						t.Error(err)
						return
					}
					if len(ls) == 0 {
						if _, ok := n.NextDue(); !ok {
							return
						}
						continue
					}
					for _, l := range ls {
						mu.Lock()
						if other, busy := open[l.Message.ID]; busy {
							t.Errorf("%s leased by %s while %s holds it", l.Message.ID, n.Node(), other)
						}
						open[l.Message.ID] = n.Node()
						mu.Unlock()
						time.Sleep(time.Millisecond) // the "delivery"
						mu.Lock()
						delete(open, l.Message.ID)
						delivered[l.Message.ID]++
						mu.Unlock()
						if err := n.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideDelivered}}); err != nil {
							t.Error(err)
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	if len(delivered) != messages {
		t.Errorf("%d messages delivered, want %d", len(delivered), messages)
	}
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	st, err := nodes[0].Stats()
	if err != nil || st.Done != messages || st.Live != 0 {
		t.Errorf("stats = %+v, %v", st, err)
	}
}

// A node that dies holding a lease: once the lease expires (the database's
// clock), the other node leases the message again, the dead node's attempt
// counted as interrupted; the first node's late RecordOutcome then gets
// ErrLeaseLost and changes nothing.
func TestExpiredLeaseIsTakenOverAndTheLateOutcomeIsRefused(t *testing.T) {
	dsn := migratedDatabase(t)
	const lease = 2 * time.Second
	a := openNode(t, dsn, "a", queue.Options{}, lease)
	defer a.Close()
	b := openNode(t, dsn, "b", queue.Options{}, lease)
	defer b.Close()
	id, err := a.Enqueue(envelope("r@example.org"), strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.Lease(time.Now(), 1)
	if err != nil || len(la) != 1 {
		t.Fatalf("node a lease: %v, %v", la, err)
	}
	if ls, err := b.Lease(time.Now(), 1); err != nil || len(ls) != 0 {
		t.Fatalf("node b leased a message node a holds: %v, %v", ls, err)
	}
	pgstore.PauseRenewal(a) // node a hangs: its leases are no longer renewed
	// Wait for the database to say the lease has expired, then for node b
	// to see it due (NextDue) — no sleeping on the test's own clock.
	deadline := time.Now().Add(30 * time.Second)
	var lb []queue.Lease
	for len(lb) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node b never took over the expired lease")
		}
		select {
		case <-b.Changed():
		case <-time.After(100 * time.Millisecond):
		}
		if lb, err = b.Lease(time.Now(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if lb[0].Token == la[0].Token || lb[0].AttemptIndex != 1 {
		t.Errorf("take-over lease token %d (first %d), attempt index %d", lb[0].Token, la[0].Token, lb[0].AttemptIndex)
	}
	m, err := b.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Attempts) != 2 || !m.Attempts[0].Interrupted || m.Recipients[0].Attempts != 2 || m.Status != queue.StatusActive {
		t.Errorf("after take-over: status %s, attempts %+v, recipient %+v", m.Status, m.Attempts, m.Recipients[0])
	}
	// Node a comes back from its stall and reports: refused.
	err = a.RecordOutcome(la[0], queue.Attempt{Route: "late"}, []queue.Outcome{{Recipient: "r@example.org", Decision: queue.DecideBounce}})
	if !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("late RecordOutcome: %v, want ErrLeaseLost", err)
	}
	if err := b.RecordOutcome(lb[0], queue.Attempt{Route: "b"}, []queue.Outcome{{Recipient: "r@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Fatal(err)
	}
	m, _ = a.Get(id)
	if m.Status != queue.StatusDone || m.Recipients[0].State != queue.Delivered || m.Attempts[1].Route != "b" {
		t.Errorf("final: %+v", m)
	}
}

// A restarted node takes back its own leases at Open (they are dead), and
// leaves another node's alone.
func TestRestartTakesBackOnlyOwnLeases(t *testing.T) {
	dsn := migratedDatabase(t)
	a := openNode(t, dsn, "a", queue.Options{}, time.Hour)
	b := openNode(t, dsn, "b", queue.Options{}, time.Hour)
	defer b.Close()
	for range 2 {
		if _, err := a.Enqueue(envelope("r@example.org"), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	la, _ := a.Lease(time.Now(), 1)
	lb, _ := b.Lease(time.Now(), 1)
	if len(la) != 1 || len(lb) != 1 {
		t.Fatalf("leases %d %d", len(la), len(lb))
	}
	a.Close()
	a = openNode(t, dsn, "a", queue.Options{}, time.Hour)
	defer a.Close()
	if m, _ := a.Get(la[0].Message.ID); m.Status != queue.StatusDeferred || !m.Attempts[0].Interrupted {
		t.Errorf("a's own lease after restart: %s %+v", m.Status, m.Attempts)
	}
	if m, _ := a.Get(lb[0].Message.ID); m.Status != queue.StatusActive {
		t.Errorf("b's lease after a's restart: %s, want active", m.Status)
	}
	if err := b.RecordOutcome(lb[0], queue.Attempt{}, []queue.Outcome{{Recipient: "r@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Errorf("b's outcome after a's restart: %v", err)
	}
}

// A NOTIFY from one node's enqueue wakes the other node's Changed well
// before its poll would.
func TestChangedCrossesNodes(t *testing.T) {
	dsn := migratedDatabase(t)
	a, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "a", PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "b", PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// The listener connects in the background: enqueue until b hears one.
	deadline := time.After(30 * time.Second)
	for {
		if _, err := a.Enqueue(envelope("r@example.org"), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.Changed():
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("node b never heard node a's enqueue")
		}
	}
}

// A database whose schema is newer than this build is refused with a clear
// error, not written to.
func TestOpenRefusesANewerSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := openNode(t, dsn, "a", queue.Options{}, time.Minute)
	s.Close()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "UPDATE schema_version SET version = 999"); err != nil {
		t.Fatal(err)
	}
	_, err = pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "a"})
	if err == nil || !strings.Contains(err.Error(), "version 999, newer") {
		t.Fatalf("Open on a newer schema: %v", err)
	}
}

// A live node's lease does not run out, however long its delivery takes:
// the node renews it every LeaseTime/3, so another node never takes over a
// message still being delivered (a lease expires only when its node stops).
func TestLiveNodeKeepsItsLeasePastLeaseTime(t *testing.T) {
	dsn := migratedDatabase(t)
	const lease = time.Second
	a := openNode(t, dsn, "a", queue.Options{}, lease)
	defer a.Close()
	b := openNode(t, dsn, "b", queue.Options{}, lease)
	defer b.Close()
	if _, err := a.Enqueue(envelope("r@example.org"), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	la, err := a.Lease(time.Now(), 1)
	if err != nil || len(la) != 1 {
		t.Fatalf("node a lease: %v, %v", la, err)
	}
	for end := time.Now().Add(4 * lease); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if lb, err := b.Lease(time.Now(), 1); err != nil || len(lb) != 0 {
			t.Fatalf("node b leased a message node a (alive) still holds: %v, %v", lb, err)
		}
	}
	if err := a.RecordOutcome(la[0], queue.Attempt{Route: "a"}, []queue.Outcome{{Recipient: "r@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Fatalf("node a's outcome after 4 lease times: %v", err)
	}
}

// Two running processes with one node name are refused: the second would
// take back the first one's live leases at start.
func TestNodeNameInUseIsRefused(t *testing.T) {
	defer pgstore.SetNodeLockWait(500 * time.Millisecond)()
	dsn := migratedDatabase(t)
	a := openNode(t, dsn, "a", queue.Options{}, time.Hour)
	_, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "a"})
	if err == nil || !strings.Contains(err.Error(), "in use by another running mailq") {
		t.Fatalf("second Open with node name a: %v, want refused as in use", err)
	}
	a.Close()
	// Once the first has stopped, the name is free again.
	a = openNode(t, dsn, "a", queue.Options{}, time.Hour)
	a.Close()
}
