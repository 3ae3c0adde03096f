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
		{"missing chunk", func(tx *bolt.Tx, ids []ID) error { return tx.Bucket(bucketBodies).Delete(chunkKey(ids[3], 1)) }, "body incomplete: 1 chunks"},
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
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBodies).Delete(chunkKey(victim, 0)) })
	db.Close()
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

// TestSalvageSurvivesPageDamage: on a store cut short and on one with
// bytes flipped all over, salvage neither panics nor faults; whatever it
// saves forms a clean store, saved plus lost never exceed what there was,
// and with half the pages intact at least a quarter of the messages are saved
// (the leaf pages are read one by one when the tree above them is gone).
func TestSalvageSurvivesPageDamage(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"cut to half", func(t *testing.T, path string) {
			f, _ := os.Open(path)
			info, _ := f.Stat()
			m, err := readMeta(f, info.Size())
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			os.Truncate(path, int64(m.hwm)*int64(m.pageSize)/2)
		}},
		{"bytes flipped", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			for i := 9000; i < len(b); i += 997 {
				b[i] ^= 0x5a
			}
			os.WriteFile(path, b, 0o600)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := damagedStoreFile(t, 200)
			c.damage(t, path)
			to := filepath.Join(t.TempDir(), "queue.db")
			rep, err := Salvage(path, to)
			if err != nil {
				t.Fatalf("Salvage: %v", err)
			}
			lostIDs := 0
			for _, l := range rep.Lost {
				if l.ID != "" {
					lostIDs++
				}
			}
			if rep.Saved+lostIDs > 200 || rep.Saved < 50 {
				t.Errorf("saved %d, lost %d of 200", rep.Saved, lostIDs)
			}
			if crep, err := CheckFile(to); err != nil || !crep.OK() || crep.Messages != rep.Saved {
				t.Errorf("salvaged store: %v %+v", err, crep)
			}
			t.Logf("saved %d, lost %d of 200", rep.Saved, lostIDs)
		})
	}
}
