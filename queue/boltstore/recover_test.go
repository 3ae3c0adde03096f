package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rawUpdate edits the closed store's file directly with bbolt.
func (ts *testStore) rawUpdate(t *testing.T, fn func(tx *bolt.Tx) error) {
	t.Helper()
	ts.Store.Close()
	db, err := bolt.Open(ts.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedRecordsAreSetAside damages three records of five. Open does
// not read every record any more (issue 18): a damaged record is set aside
// when Lease first meets it, or at Open when the indexes are rebuilt (here:
// a store whose index version is missing, as one from an older mailq).
func TestDamagedRecordsAreSetAside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rebuild bool
	}{{"found by lease", false}, {"found by the rebuild at open", true}} {
		t.Run(tc.name, func(t *testing.T) {
			testDamagedRecordsAreSetAside(t, tc.rebuild)
		})
	}
}

func testDamagedRecordsAreSetAside(t *testing.T, rebuild bool) {
	ts := openTestStore(t)
	var ids []ID
	for i := range 5 {
		ids = append(ids, ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), strings.Repeat("body", 40000+i)))
	}
	garbage, noBody, wrongID := ids[1], ids[3], ids[4]
	ts.rawUpdate(t, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMsgs).Put([]byte(garbage), []byte("{not json")); err != nil {
			return err
		}
		if err := bodyBucket(tx, noBody).Delete(chunkKey(noBody, 1)); err != nil {
			return err
		}
		v := tx.Bucket(bucketMsgs).Get([]byte(wrongID))
		if err := tx.Bucket(bucketMsgs).Put([]byte(wrongID), bytes.Replace(v, []byte(wrongID), []byte(ids[0]), 1)); err != nil {
			return err
		}
		if rebuild {
			return tx.Bucket(bucketMeta).Delete(metaIndexVersion)
		}
		return nil
	})
	var mu sync.Mutex
	reported := map[ID]string{}
	ts.opts.OnDamaged = func(id ID, reason error) {
		mu.Lock()
		defer mu.Unlock()
		reported[id] = reason.Error()
	}
	ts.Store = nil
	ts.reopen(t)
	if b := ts.body(t, ids[2]); string(b) != strings.Repeat("body", 40002) {
		t.Errorf("body of an intact message changed")
	}
	// The intact ones still work end to end.
	var got []ID
	for _, l := range ts.mustLease(t, ts.clock.Now(), 10) {
		got = append(got, l.Message.ID)
		if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@example.org", Decision: DecideDelivered}}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, []ID{ids[0], ids[2]}) {
		t.Errorf("leased %v, want %v", got, []ID{ids[0], ids[2]})
	}
	mu.Lock()
	for _, id := range []ID{garbage, noBody, wrongID} {
		if reported[id] == "" {
			t.Errorf("OnDamaged not called for %s (reported: %v)", id, reported)
		}
		if _, err := ts.Get(id); err == nil {
			t.Errorf("damaged %s still visible in the queue", id)
		}
	}
	if len(reported) != 3 {
		t.Errorf("reported %v, want 3 damaged", reported)
	}
	mu.Unlock()
	st, _ := ts.Stats()
	if st.Damaged != 3 || st.Done != 2 || st.Live != 0 {
		t.Errorf("stats = %+v, want 3 damaged, 2 done, none live", st)
	}
	if _, err := ts.Body(ids[2]); !errors.Is(err, ErrBodyDropped) {
		t.Errorf("Body of a delivered message: %v, want ErrBodyDropped", err)
	}
	// The damaged record is kept, raw, for an operator; a second open does
	// not report it again, and the counts survive it.
	ts.rawUpdate(t, func(tx *bolt.Tx) error {
		var d damagedRecord
		if err := json.Unmarshal(tx.Bucket(bucketDamaged).Get([]byte(garbage)), &d); err != nil {
			t.Errorf("damaged entry: %v", err)
		}
		if string(d.Record) != "{not json" || d.Reason == "" {
			t.Errorf("damaged entry = %+v", d)
		}
		return nil
	})
	clear(reported)
	ts.Store = nil
	ts.reopen(t)
	if len(reported) != 0 {
		t.Errorf("second open reported %v again", reported)
	}
	if st, _ := ts.Stats(); st.Damaged != 3 || st.Done != 2 || st.Live != 0 {
		t.Errorf("stats after second open = %+v", st)
	}
}

func TestOpenRebuildsIndexes(t *testing.T) {
	ts := openTestStore(t)
	a := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	b := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "y")
	ts.rawUpdate(t, func(tx *bolt.Tx) error {
		// Lose the schedule index entirely, and add a stale entry.
		if err := tx.DeleteBucket(bucketSched); err != nil {
			return err
		}
		sched, err := tx.CreateBucket(bucketSched)
		if err != nil {
			return err
		}
		return sched.Put(timeKey(1, "ffffffffffffffff"), nil)
	})
	ts.Store = nil
	ts.reopen(t)
	if got := leaseIDs(ts.mustLease(t, ts.clock.Now(), 10)); !slices.Equal(got, []ID{a, b}) {
		t.Errorf("after rebuild leased %v, want [%s %s]", got, a, b)
	}
}

func TestLeaseSkipsRecordDamagedWhileOpen(t *testing.T) {
	ts := openTestStore(t)
	a := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	b := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "y")
	if err := ts.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMsgs).Put([]byte(a), []byte("garbage"))
	}); err != nil {
		t.Fatal(err)
	}
	if got := leaseIDs(ts.mustLease(t, ts.clock.Now(), 10)); !slices.Equal(got, []ID{b}) {
		t.Errorf("leased %v, want only the intact %s", got, b)
	}
}

// storeState is what a reopen must keep: counts, and every message's
// status and next attempt, and what is due in which order.
func storeState(t *testing.T, ts *testStore) (Stats, map[ID]string, []ID) {
	t.Helper()
	st, err := ts.Stats()
	if err != nil {
		t.Fatal(err)
	}
	st.OldestAge = 0
	msgs := map[ID]string{}
	for _, f := range []Filter{{}, {Status: StatusDone}} {
		if err := ts.List(f, func(m *Message) error {
			msgs[m.ID] = fmt.Sprintf("%s next=%s", m.Status, m.NextAttempt.Format(time.RFC3339Nano))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var due []ID
	if err := ts.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSched).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			_, id := splitTimeKey(k)
			due = append(due, id)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return st, msgs, due
}

// mixedQueue leaves one message in each status, plus n deferred ones.
func mixedQueue(t *testing.T, ts *testStore, n int) (leased ID) {
	t.Helper()
	t0 := ts.clock.Now()
	if err := fillDeferred(ts.Store, n, t0.Add(100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	done := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "done")
	deferred := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "deferred")
	leased = ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "leased")
	held := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "held")
	ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "queued")
	for _, l := range ts.mustLease(t, t0, 3) {
		switch l.Message.ID {
		case done:
			if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@example.org", Decision: DecideDelivered}}); err != nil {
				t.Fatal(err)
			}
		case deferred:
			if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@example.org", Decision: DecideRetry, RetryAt: t0.Add(time.Hour)}}); err != nil {
				t.Fatal(err)
			}
		case leased: // left in flight
		default:
			t.Fatalf("leased %s, not one of the five", l.Message.ID)
		}
	}
	if err := ts.Hold(held); err != nil {
		t.Fatal(err)
	}
	return leased
}

// TestOpenKeepsIndexes: reopening after a clean stop and after a crash
// (the file as a kill -9 leaves it: every commit on disk, a lease in
// flight) never rebuilds the indexes (issue 18 item 1: Open rebuilt them
// from every record, in one transaction, at every start). The counts come
// back from the store and the lease is recovered, due now, its attempt
// counted as interrupted.
func TestOpenKeepsIndexes(t *testing.T) {
	ts := openTestStore(t)
	var rebuilds []RebuildProgress
	ts.opts.OnRebuild = func(p RebuildProgress) { rebuilds = append(rebuilds, p) }
	leased := mixedQueue(t, ts, 100)
	stBefore, msgsBefore, _ := storeState(t, ts)
	if stBefore.Active != 1 || stBefore.Held != 1 || stBefore.Done != 1 || stBefore.Deferred != 101 || stBefore.Queued != 1 {
		t.Fatalf("before: %+v", stBefore)
	}

	// The crash image: the file's bytes while the store is open and idle.
	image, err := os.ReadFile(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	ts.reopen(t) // clean
	if len(rebuilds) != 0 {
		t.Errorf("a reopen after a clean stop rebuilt the indexes: %+v", rebuilds)
	}
	crashed := filepath.Join(t.TempDir(), "queue.db")
	if err := os.WriteFile(crashed, image, 0o600); err != nil {
		t.Fatal(err)
	}
	ts.Store.Close()
	ts.Store = nil
	ts.path = crashed
	ts.reopen(t)
	if len(rebuilds) != 0 {
		t.Errorf("a reopen after a crash rebuilt the indexes: %+v", rebuilds)
	}
	for name, want := range map[string]int{"active": 0, "deferred": 102, "queued": 1, "held": 1, "done": 1, "live": 104} {
		st, _ := ts.Stats()
		got := map[string]int{"active": st.Active, "deferred": st.Deferred, "queued": st.Queued, "held": st.Held, "done": st.Done, "live": st.Live}[name]
		if got != want {
			t.Errorf("after the crash: %s = %d, want %d (%+v)", name, got, want, st)
		}
	}
	m := ts.mustGet(t, leased)
	if m.Status != StatusDeferred || m.NextAttempt.After(ts.clock.Now()) || len(m.Attempts) != 1 || !m.Attempts[0].Interrupted {
		t.Errorf("recovered lease: %+v", m)
	}
	if got := leaseIDs(ts.mustLease(t, ts.clock.Now(), 10)); !slices.Contains(got, leased) {
		t.Errorf("recovered lease not due: leased %v", got)
	}
	_, msgsAfter, _ := storeState(t, ts)
	if len(msgsAfter) != len(msgsBefore) {
		t.Errorf("%d messages after, %d before", len(msgsAfter), len(msgsBefore))
	}
}

// TestRebuildInBatches drops the index version, as a store from an older
// mailq has none: Open rebuilds in several batches of sorted keys and ends
// with exactly the indexes and counts every commit had kept; the next Open
// does not rebuild again.
func TestRebuildInBatches(t *testing.T) {
	ts := openTestStore(t)
	var rebuilds []RebuildProgress
	ts.opts.OnRebuild = func(p RebuildProgress) { rebuilds = append(rebuilds, p) }
	defer func(n int) { rebuildBatch = n }(rebuildBatch)
	rebuildBatch = 100
	mixedQueue(t, ts, 2*rebuildBatch+10)
	ts.reopen(t) // the lease recovered, so a rebuild has nothing else to change
	stWant, msgsWant, dueWant := storeState(t, ts)
	ts.rawUpdate(t, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaIndexVersion) })
	ts.Store = nil
	ts.reopen(t)
	if len(rebuilds) < 4 || rebuilds[0].Reason == "" || !rebuilds[len(rebuilds)-1].Done || rebuilds[len(rebuilds)-1].Checked != len(msgsWant) {
		t.Fatalf("rebuild progress %+v: want a reason, 3 batches and the end", rebuilds)
	}
	st, msgs, due := storeState(t, ts)
	if st != stWant {
		t.Errorf("counts after the rebuild %+v, want %+v", st, stWant)
	}
	if !maps.Equal(msgs, msgsWant) {
		t.Errorf("messages differ after the rebuild")
	}
	if !slices.Equal(due, dueWant) {
		t.Errorf("schedule differs after the rebuild: %d entries, want %d", len(due), len(dueWant))
	}
	rebuilds = nil
	ts.reopen(t)
	if len(rebuilds) != 0 {
		t.Errorf("second open rebuilt again: %+v", rebuilds)
	}
}
