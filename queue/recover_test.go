package queue

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

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
		if err := tx.Bucket(bucketBodies).Delete(chunkKey(noBody, 1)); err != nil {
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
	if b := ts.body(t, ids[2]); string(b) != strings.Repeat("body", 40002) {
		t.Errorf("body of an intact message changed")
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
