package boltstore

import (
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// chunksStored counts the body chunks the bodies bucket holds for id.
func chunksStored(t *testing.T, s *Store, id ID) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		c := bodyBucket(tx, id).Cursor()
		for k, _ := c.Seek([]byte(id)); k != nil && strings.HasPrefix(string(k), string(id)); k, _ = c.Next() {
			if len(k) == idLen+4 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFinishedMessageDropsBody is issue 13's "done messages drop their
// bodies when they finish": before, a delivered or bounced message kept
// its whole body for Retention (7 days; 636 MB of queue.db after 65k
// messages). The record stays (show, Size); Body says the body was
// dropped; reopening after a crash (the full index rebuild and its body
// check) and check-store take the bodiless record as healthy; a message
// only partly done keeps its body.
func TestFinishedMessageDropsBody(t *testing.T) {
	ts := openTestStore(t)
	body := strings.Repeat("0123456789abcdef", 3*bodyChunkSize/16+5) // four chunks
	delivered := ts.mustEnqueue(t, envelope("a@b.test", "r@c.test"), body)
	bounced := ts.mustEnqueue(t, envelope("a@b.test", "s@c.test"), body)
	partly := ts.mustEnqueue(t, envelope("a@b.test", "t@c.test", "u@c.test"), body)
	for _, id := range []ID{delivered, bounced, partly} {
		if got := chunksStored(t, ts.Store, id); got != 4 {
			t.Fatalf("message %s: %d chunks stored after Enqueue, want 4", id, got)
		}
	}
	decide := map[ID]Decision{delivered: DecideDelivered, bounced: DecideBounce, partly: DecideDelivered}
	for _, l := range ts.mustLease(t, ts.clock.Now(), 10) {
		var out []Outcome
		for i, rc := range l.Recipients {
			d := decide[l.Message.ID]
			if i > 0 {
				d = DecideRetry
			}
			out = append(out, Outcome{Recipient: rc, Decision: d, RetryAt: ts.clock.Now().Add(3600e9)})
		}
		if err := ts.RecordOutcome(l, Attempt{Time: ts.clock.Now()}, out); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, id := range []ID{delivered, bounced} {
			m := ts.mustGet(t, id)
			if m.Status != StatusDone || m.Size != int64(len(body)) {
				t.Errorf("%s: message %s: status %s, size %d; want done, %d", when, id, m.Status, m.Size, len(body))
			}
			if got := chunksStored(t, ts.Store, id); got != 0 {
				t.Errorf("%s: done message %s still has %d body chunks stored", when, id, got)
			}
			if _, err := ts.Body(id); !errors.Is(err, ErrBodyDropped) {
				t.Errorf("%s: Body of done message %s: %v, want ErrBodyDropped", when, id, err)
			}
		}
		if got := string(ts.body(t, partly)); got != body {
			t.Errorf("%s: the body of a message with a recipient left is %d bytes, want %d", when, len(got), len(body))
		}
	}
	check("after the outcomes")

	// A crash: the next Open walks every record and checks every body.
	ts.rawUpdate(t, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaIndexVersion) })
	ts.Store = nil
	var damagedIDs []ID
	ts.opts.OnDamaged = func(id ID, _ error) { damagedIDs = append(damagedIDs, id) }
	ts.reopen(t)
	if len(damagedIDs) > 0 {
		t.Errorf("the index rebuild set aside %v: a done message without its body is not damage", damagedIDs)
	}
	check("after an index rebuild")
	if st, _ := ts.Stats(); st.Done != 2 || st.Damaged != 0 {
		t.Errorf("stats after the rebuild = %+v, want 2 done, none damaged", st)
	}

	ts.Store.Close()
	rep, err := CheckFile(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("check-store finds problems with bodiless done messages: %v", rep.Problems)
	}
	ts.reopen(t)
}
