package pgstore_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"mailq/queue"
	"mailq/queue/boltstore"
)

// Messages in every state move from bbolt to PostgreSQL with their state
// and history; a second run imports nothing; new ids come after theirs.
func TestImportFromBbolt(t *testing.T) {
	clock := time.Date(2026, 11, 26, 5, 0, 0, 123456789, time.UTC)
	now := func() time.Time { return clock }
	src, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ids []queue.ID
	enqueue := func(body string) queue.ID {
		id, err := src.Enqueue(envelope("a@x.test", "b@y.test"), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		return id
	}
	enqueue("deferred")
	held, done := enqueue("held"), enqueue("done")
	ls, err := src.Lease(clock, 10)
	if err != nil || len(ls) != 3 {
		t.Fatalf("lease: %d, %v", len(ls), err)
	}
	for _, l := range ls {
		d := queue.DecideRetry
		if l.Message.ID == done {
			d = queue.DecideDelivered
		}
		oc := []queue.Outcome{{Recipient: "a@x.test", Decision: d, RetryAt: clock.Add(time.Hour), Reply: &queue.Reply{Code: 451, Text: "later"}},
			{Recipient: "b@y.test", Decision: queue.DecideBounce, Reply: &queue.Reply{Code: 550, Text: "no"}}}
		if err := src.RecordOutcome(l, queue.Attempt{Route: "r", Time: clock}, oc); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Hold(held); err != nil {
		t.Fatal(err)
	}
	enqueue(strings.Repeat("big", 200000)) // queued, several chunks
	enqueue("queued")
	dst := openNode(t, migratedDatabase(t), "a", queue.Options{Now: now}, time.Minute)
	defer dst.Close()
	copyAll := func() int {
		n := 0
		for _, id := range ids {
			m, err := src.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			body, err := src.Body(id)
			if errors.Is(err, queue.ErrBodyDropped) && id == done {
				continue // bbolt drops a body when its message finishes (issue 13): nothing to import
			}
			if err != nil {
				t.Fatal(err)
			}
			ok, err := dst.Import(m, body)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				n++
			}
		}
		return n
	}
	if n := copyAll(); n != len(ids)-1 {
		t.Fatalf("imported %d, want %d", n, len(ids))
	}
	if n := copyAll(); n != 0 {
		t.Fatalf("a rerun imported %d again", n)
	}
	for _, id := range ids {
		if id == done {
			continue
		}
		want, _ := src.Get(id)
		got, err := dst.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs:\n got %+v\nwant %+v", id, got, want)
		}
	}
	ss, _ := src.Stats()
	ds, _ := dst.Stats()
	if ss.Queued != ds.Queued || ss.Deferred != ds.Deferred || ss.Held != ds.Held || ss.Done != ds.Done+1 {
		t.Errorf("stats differ: bbolt %+v, postgres %+v", ss, ds)
	}
	id, err := dst.Enqueue(envelope("c@z.test"), strings.NewReader("new"))
	if err != nil || id <= ids[len(ids)-1] {
		t.Errorf("new id %s (%v) not after the imported %s", id, err, ids[len(ids)-1])
	}
	if ss.Active != 0 || ss.Deferred != 1 || ss.Held != 1 || ss.Done != 1 || ss.Queued != 2 {
		t.Errorf("the source is not in the states the test means: %+v", ss)
	}
}
