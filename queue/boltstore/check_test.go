package boltstore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCheckFileCleanStore: a store with messages in every state is clean,
// and the counts add up.
func TestCheckFileCleanStore(t *testing.T) {
	ts := openTestStore(t)
	var ids []ID
	for i := range 10 {
		ids = append(ids, ts.mustEnqueue(t, envelope("a@b.test", fmt.Sprintf("r%d@c.test", i)), strings.Repeat("y", i*30000)))
	}
	ts.Hold(ids[0])
	ls := ts.mustLease(t, ts.clock.Now(), 2)
	ts.RecordOutcome(ls[0], Attempt{Time: ts.clock.Now()}, []Outcome{{Recipient: ls[0].Recipients[0], Decision: DecideDelivered}})
	ts.Store.Close()
	rep, err := CheckFile(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("problems in a healthy store: %v", rep.Problems)
	}
	if rep.Messages != 10 || rep.ByStatus[StatusDone] != 1 || rep.ByStatus[StatusHeld] != 1 || rep.ByStatus[StatusActive] != 1 || rep.Live != 9 || rep.Finished != 1 {
		t.Errorf("report %+v, want 10 messages: 1 done, 1 held, 1 active, 9 live", rep)
	}
	ts.reopen(t) // for the cleanup's Close
}

// TestCheckFileFindsEachInconsistency damages records, indexes and
// bodies one by one; each problem names its message id.
func TestCheckFileFindsEachInconsistency(t *testing.T) {
	cases := []struct {
		name   string
		damage func(tx *bolt.Tx, ids []ID) error
		want   string
	}{
		{"missing chunk", func(tx *bolt.Tx, ids []ID) error { return bodyBucket(tx, ids[3]).Delete(chunkKey(ids[3], 1)) }, "body incomplete: 1 chunks"},
		{"orphan chunk", func(tx *bolt.Tx, ids []ID) error {
			return tx.Bucket(bucketBodies).Put(chunkKey(formatID(999), 0), []byte("x"))
		}, "message 00000000000003e7: body chunks without a record"},
		{"bad record", func(tx *bolt.Tx, ids []ID) error {
			return tx.Bucket(bucketMsgs).Put([]byte(ids[2]), []byte("{not json"))
		}, "undecodable record"},
		{"live entry missing", func(tx *bolt.Tx, ids []ID) error { return tx.Bucket(bucketLive).Delete([]byte(ids[4])) }, "not in the live index"},
		{"sched entry stale", func(tx *bolt.Tx, ids []ID) error {
			return tx.Bucket(bucketSched).Put(timeKey(5, formatID(777)), nil)
		}, "message 0000000000000309: in the schedule index but has no record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := openTestStore(t)
			var ids []ID
			for i := range 6 {
				ids = append(ids, ts.mustEnqueue(t, envelope("a@b.test", "r@c.test"), strings.Repeat("z", 70000+i)))
			}
			ts.Store.Close()
			db, err := bolt.Open(ts.path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return c.damage(tx, ids) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			rep, err := CheckFile(ts.path)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || strings.Contains(p, c.want)
			}
			if !found || rep.OK() {
				t.Errorf("problems %q, want one saying %q", rep.Problems, c.want)
			}
			ts.reopen(t)
		})
	}
}

// TestSalvageCopiesReadableMessages damages one message's body and the
// two meta pages' checksums; salvage copies the rest whole (same ids,
// bodies and state), lists the broken one with its recipient, and leaves
// the damaged file byte for byte as it was.
func TestSalvageCopiesReadableMessages(t *testing.T) {
	ts := openTestStore(t)
	bodies := map[ID]string{}
	for i := range 30 {
		b := fmt.Sprintf("Subject: %d\r\n\r\n%s", i, strings.Repeat("s", i*5000))
		bodies[ts.mustEnqueue(t, envelope("a@b.test", fmt.Sprintf("r%d@c.test", i)), b)] = b
	}
	victim := formatID(12)
	ts.Store.Close()
	db, _ := bolt.Open(ts.path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error { return bodyBucket(tx, victim).Delete(chunkKey(victim, 0)) })
	db.Close()
	// Rewritten afresh, so no freed page still holds the chunk: salvage
	// reads the pages for what the tree lacks, and would find it there.
	compactInPlace(t, ts.path)
	overwrite(t, ts.path, 16+12, []byte("junk")) // meta flags: only the checksum notices
	overwrite(t, ts.path, 4096+16+12, []byte("junk"))
	before, _ := os.ReadFile(ts.path)

	to := filepath.Join(t.TempDir(), "new", "queue.db")
	rep, err := Salvage(ts.path, to)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(ts.path); !bytes.Equal(before, after) {
		t.Error("salvage changed the damaged file")
	}
	if rep.Saved != 29 || len(rep.Lost) != 1 || rep.Lost[0].ID != victim || len(rep.Lost[0].Recipients) != 1 || rep.Lost[0].Recipients[0] != "r11@c.test" {
		t.Fatalf("saved %d, lost %+v; want 29 saved and %s (to r11@c.test) lost", rep.Saved, rep.Lost, victim)
	}
	if crep, err := CheckFile(to); err != nil || !crep.OK() {
		t.Fatalf("salvaged store: %v %v", err, crep.Problems)
	}
	s, err := Open(to, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := &testStore{Store: s}
	for id, b := range bodies {
		if id == victim {
			continue
		}
		if string(got.body(t, id)) != b {
			t.Errorf("message %s: body differs after salvage", id)
		}
	}
	id, err := s.Enqueue(envelope("a@b.test", "n@c.test"), strings.NewReader("new"))
	if err != nil || id <= formatID(30) {
		t.Errorf("new message after salvage got id %s (%v), want one beyond the damaged store's ids", id, err)
	}
}

// TestBackupIsAConsistentStore: a backup taken while writers run opens
// as a clean store holding every message acknowledged before it began.
func TestBackupIsAConsistentStore(t *testing.T) {
	ts := openTestStore(t)
	var before []ID
	for range 50 {
		before = append(before, ts.mustEnqueue(t, envelope("a@b.test", "r@c.test"), strings.Repeat("b", 20000)))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				ts.Enqueue(envelope("a@b.test", "r@c.test"), strings.NewReader("during"))
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, _ := os.Create(path)
	n, err := ts.Backup(f)
	f.Close()
	close(stop)
	<-done
	if err != nil || n == 0 {
		t.Fatalf("Backup: %d bytes, %v", n, err)
	}
	if rep, err := CheckFile(path); err != nil || !rep.OK() {
		t.Fatalf("backup is not a clean store: %v %v", err, rep.Problems)
	}
	s, err := Open(path, Options{Now: func() time.Time { return ts.clock.Now() }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range before {
		if _, err := s.Get(id); err != nil {
			t.Errorf("message %s acknowledged before the backup is not in it: %v", id, err)
		}
	}
}

// TestCheckFileRefusesALiveStore: with the store open (a running daemon
// holds its lock), CheckFile says to stop the daemon instead of reading a
// file that changes under it.
func TestCheckFileRefusesALiveStore(t *testing.T) {
	ts := openTestStore(t)
	ts.mustEnqueue(t, envelope("a@b.test", "r@c.test"), "x")
	_, err := CheckFile(ts.path)
	if err == nil || !strings.Contains(err.Error(), "stop the daemon first") {
		t.Fatalf("CheckFile on an open store: %v, want a refusal", err)
	}
}

// TestSalvageSurvivesPageDamage: on a store cut short, on one with bytes
// flipped in chosen pages and on one whose message keys were damaged,
// salvage neither panics nor faults; whatever it saves forms a clean store;
// it never reports a message lost that it saved, nor an id the store never
// handed out (a damaged key is no lost message); and it saves at least what
// the damage left readable. The store's layout is the same on every run
// (damagedStoreFile), so each case damages the same records every time.
func TestSalvageSurvivesPageDamage(t *testing.T) {
	const n = 200
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		atLeast int // messages the damage leaves readable, with some margin
	}{
		// The leaf pages before the cut are read one by one when the tree
		// above them is gone (a compacted file ends with its branch pages).
		// Which records lie before it depends on the layout: since bodies
		// of several chunks have buckets of their own, Compact writes the
		// records after the bodies, and a cut to half kept none of them,
		// so the cut keeps three quarters.
		{"cut to three quarters", func(t *testing.T, path string) {
			m := storeMeta(t, path)
			os.Truncate(path, int64(m.hwm)*int64(m.pageSize)*3/4)
		}, n / 4},
		// Half the pages intact: a quarter of the messages at least.
		{"every other page damaged", func(t *testing.T, path string) {
			flipInPages(t, path, func(page int64) bool { return page%2 == 1 }, 24, 1100, 2300, 3500)
		}, n / 4},
		// Every tenth message's key no longer an id: each is still saved
		// under the id its record names, and no bogus id is reported.
		{"message keys damaged", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= n; seq += 10 {
				id := formatID(seq)
				key := bytes.Index(b, []byte(string(id)+`{"id":"`+string(id)+`"`))
				if key < 0 {
					t.Fatalf("the record of %s is not in the file", id)
				}
				b[key] = 'z'
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, n},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := damagedStoreFile(t, n)
			c.damage(t, path)
			to := filepath.Join(t.TempDir(), "queue.db")
			rep, err := Salvage(path, to)
			if err != nil {
				t.Fatalf("Salvage: %v", err)
			}
			saved := storeIDs(t, to)
			lostIDs := 0
			for _, l := range rep.Lost {
				switch {
				case l.ID == "":
					continue
				case saved[l.ID]:
					t.Errorf("%s is reported both saved and lost (%s)", l.ID, l.Reason)
				case !validID(l.ID) || sequenceOf(l.ID) > n:
					t.Errorf("lost %q is no id the store handed out (%s)", l.ID, l.Reason)
				}
				lostIDs++
			}
			if rep.Saved != len(saved) || rep.Saved+lostIDs > n || rep.Saved < c.atLeast {
				t.Errorf("saved %d (the new store holds %d), lost %d of %d; want at least %d saved",
					rep.Saved, len(saved), lostIDs, n, c.atLeast)
			}
			if crep, err := CheckFile(to); err != nil || !crep.OK() || crep.Messages != rep.Saved {
				t.Errorf("salvaged store: %v %+v", err, crep)
			}
			t.Logf("saved %d, lost %d of %d", rep.Saved, lostIDs, n)
		})
	}
}

// storeMeta reads the header of the bbolt file at path.
func storeMeta(t *testing.T, path string) boltMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := readMeta(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// flipInPages xors 0x5a into the bytes at offsets of every page pick
// chooses, up to the file's high-water mark; the two meta pages are left
// alone (salvage has tests of its own for those).
func flipInPages(t *testing.T, path string, pick func(page int64) bool, offsets ...int) {
	t.Helper()
	m := storeMeta(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(m.pageSize)
	for page := int64(2); page < int64(m.hwm) && (page+1)*ps <= int64(len(b)); page++ {
		if pick(page) {
			for _, off := range offsets {
				b[page*ps+int64(off)] ^= 0x5a
			}
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// storeIDs lists the message ids in the store at path.
func storeIDs(t *testing.T, path string) map[ID]bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := map[ID]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMsgs).ForEach(func(k, _ []byte) error {
			ids[ID(k)] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
