package queuetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailq/queue"
)

// testRecordAttempts: a lease that became several attempts (one per route
// and connection) replaces the one interrupted record Lease wrote.
func testRecordAttempts(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@x.test", "b@y.test"), "x")
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	err := ts.RecordAttempts(l, []queue.Attempt{{Route: "x", Recipients: []string{"a@x.test"}}, {Route: "y", Recipients: []string{"b@y.test"}}},
		[]queue.Outcome{{Recipient: "a@x.test", Decision: queue.DecideDelivered}, {Recipient: "b@y.test", Decision: queue.DecideDelivered}})
	if err != nil {
		t.Fatal(err)
	}
	m := ts.mustGet(t, id)
	if len(m.Attempts) != 2 || m.Attempts[0].Route != "x" || m.Attempts[1].Route != "y" || m.Attempts[0].Interrupted || m.Status != queue.StatusDone {
		t.Errorf("after RecordAttempts: status %s attempts %+v", m.Status, m.Attempts)
	}
	if err := ts.RecordAttempts(l, nil, nil); err == nil {
		t.Error("RecordAttempts without an attempt succeeded")
	}
}

// testMakeAllDue: retry --all brings queued and deferred messages forward,
// not held ones; the early attempt is the operator's.
func testMakeAllDue(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	a := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	b := ts.mustEnqueue(t, envelope("s@example.com", "b@example.org"), "x")
	held := ts.mustEnqueue(t, envelope("s@example.com", "c@example.org"), "x")
	for _, l := range ts.mustLease(t, t0, 10) {
		if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideRetry, RetryAt: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Hold(held); err != nil {
		t.Fatal(err)
	}
	q := ts.mustEnqueue(t, envelope("s@example.com", "d@example.org"), "x")
	now := ts.clock.Advance(time.Minute)
	n, err := ts.MakeAllDue()
	if err != nil || n != 3 {
		t.Fatalf("MakeAllDue = %d, %v; want 3 (a, b, the queued one)", n, err)
	}
	ls := ts.mustLease(t, now, 10)
	if got := leaseIDs(ls); !slices.Equal(got, []queue.ID{q, a, b}) { // q was due since its arrival
		t.Fatalf("due after MakeAllDue = %v", got)
	}
	// The operator's attempt failing returns a and b to their schedule.
	for _, l := range ls {
		if l.Message.ID == q {
			continue
		}
		if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideRetry, RetryAt: now.Add(3 * time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		m := ts.mustGet(t, l.Message.ID)
		if !m.NextAttempt.Equal(t0.Add(time.Hour)) || !m.Attempts[len(m.Attempts)-1].Operator || m.Recipients[0].OperatorAttempts != 1 {
			t.Errorf("%s after a failed operator attempt: next %v, attempts %+v", m.ID, m.NextAttempt, m.Attempts)
		}
	}
}

// testBulkActions: each id of a bulk action gets its own result; an
// unknown id or a refused one does not stop the others.
func testBulkActions(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	var ids []queue.ID
	for range 5 {
		ids = append(ids, ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x"))
	}
	if err := ts.Hold(ids[1]); err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(ids), "ffffffffffffffff")
	errs := ts.HoldEach(all)
	for i, err := range errs {
		var want error
		switch i {
		case 1:
			want = queue.ErrHeld
		case 5:
			want = queue.ErrNotFound
		}
		if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("HoldEach[%d] = %v, want %v", i, err, want)
		}
	}
	if st, _ := ts.Stats(); st.Held != 5 {
		t.Errorf("held = %d, want 5", st.Held)
	}
	for i, err := range ts.ReleaseEach(all[:5]) {
		if err != nil {
			t.Errorf("ReleaseEach[%d] = %v", i, err)
		}
	}
	for i, err := range ts.MakeDueEach(all[:5]) {
		if err != nil {
			t.Errorf("MakeDueEach[%d] = %v", i, err)
		}
	}
	errs = ts.DeleteEach(all)
	if errs[0] != nil || errs[4] != nil || !errors.Is(errs[5], queue.ErrNotFound) {
		t.Errorf("DeleteEach = %v", errs)
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("after DeleteEach: %+v", st)
	}
}

// testSuppressionList: added by hand, looked up case-insensitively, listed
// in address order, purged by age.
func testSuppressionList(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	if err := ts.Suppress(queue.Suppression{Address: "B@x.test", Time: t0.Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Suppress(queue.Suppression{Address: "a@x.test"}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Suppress(queue.Suppression{Address: " "}); err == nil {
		t.Error("Suppress accepted an empty address")
	}
	found, err := ts.Suppressed([]string{"b@X.test", "c@x.test"})
	if err != nil || len(found) != 1 || found["b@X.test"].Address != "B@x.test" {
		t.Fatalf("Suppressed = %+v, %v", found, err)
	}
	var addrs []string
	ts.ListSuppressed(func(e queue.Suppression) error { addrs = append(addrs, e.Address); return nil })
	if !slices.Equal(addrs, []string{"a@x.test", "B@x.test"}) {
		t.Errorf("ListSuppressed = %v", addrs)
	}
	if e := mustSuppressed(t, ts.Store); !e[0].Time.Equal(t0) {
		t.Errorf("default time = %v, want the store's now %v", e[0].Time, t0)
	}
	if n, err := ts.PurgeSuppressed(t0.Add(-24 * time.Hour)); n != 1 || err != nil {
		t.Errorf("PurgeSuppressed = %d, %v; want 1", n, err)
	}
	if ok, _ := ts.Unsuppress("nobody@x.test"); ok {
		t.Error("Unsuppress found an address never listed")
	}
}

// patternReader yields n bytes of a deterministic pattern without holding
// them, so a body can be larger than anything the test keeps.
type patternReader struct {
	rng  *rand.Rand
	left int64
}

func newPattern(seed uint64, n int64) *patternReader {
	return &patternReader{rng: rand.New(rand.NewPCG(seed, seed+1)), left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.left, 7919)) // odd-sized reads
	for i := range n {
		b[i] = byte(p.rng.Uint32())
	}
	p.left -= int64(n)
	return n, nil
}

func digest(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

func testEnqueueRoundTrip(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	for _, size := range []int64{0, 1, 64 << 10, 256 << 10, 1 << 20, 3<<20 + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			env := queue.Envelope{
				Sender: "a@example.com", EnvID: "env-1", Ret: "HDRS", SMTPUTF8: true, Source: "smtp",
				Recipients: []queue.RecipientSpec{
					{Address: "b@example.org", Notify: "FAILURE,DELAY", ORCPT: "rfc822;b@example.org"},
					{Address: "c@example.net", Notify: "NEVER"},
				},
			}
			id, err := ts.Enqueue(env, newPattern(uint64(size), size))
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			want, _, _ := digest(newPattern(uint64(size), size))
			check := func() {
				t.Helper()
				rc, err := ts.Body(id)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				got, n, err := digest(rc)
				if err != nil || n != size || got != want {
					t.Fatalf("body: %d bytes, %v, same content %v; want %d bytes", n, err, got == want, size)
				}
				m := ts.mustGet(t, id)
				if m.ID != id || m.Sender != env.Sender || m.Size != size || m.EnvID != "env-1" || m.Ret != "HDRS" ||
					!m.SMTPUTF8 || m.Source != "smtp" || m.Status != queue.StatusQueued || !m.Arrival.Equal(ts.clock.Now()) ||
					!m.NextAttempt.Equal(ts.clock.Now()) || len(m.Recipients) != 2 {
					t.Fatalf("Get = %+v", m)
				}
				for i, rs := range env.Recipients {
					r := m.Recipients[i]
					if r.Address != rs.Address || r.Notify != rs.Notify || r.ORCPT != rs.ORCPT || r.State != queue.Pending || r.Attempts != 0 || r.LastReply != nil {
						t.Errorf("recipient %d = %+v, want from %+v", i, r, rs)
					}
				}
			}
			check()
			ts.reopen(t) // survives a restart, nanoseconds included
			check()
		})
	}
	// IDs sort by arrival and are never reused, across deletes and reopens.
	var prev queue.ID
	for i := range 3 {
		id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), "x")
		if id <= prev {
			t.Fatalf("id %d = %q, not after %q", i, id, prev)
		}
		prev = id
		if err := ts.Delete(id); err != nil {
			t.Fatal(err)
		}
		ts.reopen(t)
	}
	// 8-bit bodies are noted (BODY=8BITMIME), past the first chunk too.
	for body, want := range map[string]bool{
		"Subject: hi\r\n\r\nplain\r\n":               false,
		"Subject: hi\r\n\r\ncaf\xc3\xa9\r\n":         true,
		strings.Repeat("a", 1<<20+10) + "\xff":       true,
		"Subject: caf\xc3\xa9\r\n\r\n" + "plain\r\n": true,
	} {
		id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), body)
		if got := ts.mustGet(t, id).EightBit; got != want {
			t.Errorf("EightBit of %.20q... = %v, want %v", body, got, want)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testEnqueueRejects(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	tests := []struct {
		name string
		env  queue.Envelope
	}{
		{"no recipients", queue.Envelope{Sender: "a@example.com"}},
		{"empty address", envelope("a@example.com", "")},
	}
	for _, tt := range tests {
		if id, err := ts.Enqueue(tt.env, strings.NewReader("x")); err == nil {
			t.Errorf("%s: Enqueue succeeded with id %s", tt.name, id)
		}
	}
}

// testEnqueueFailedBody: a body that fails midway (a client gone), small
// or large, stores nothing and is not visible.
func testEnqueueFailedBody(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	for _, size := range []int64{3, 3 << 20} {
		body := io.MultiReader(newPattern(1, size), errReader{})
		if id, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), body); err == nil {
			t.Fatalf("Enqueue of a failing %d-byte body succeeded with id %s", size, id)
		}
		body = io.MultiReader(newPattern(1, size), strings.NewReader("x"), iotest{})
		if _, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), body); err == nil {
			t.Fatalf("Enqueue of a body ending in io.ErrUnexpectedEOF succeeded")
		}
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("failed enqueues stored messages: %+v", st)
	}
	if _, ok := ts.NextDue(); ok {
		t.Errorf("failed enqueues scheduled something")
	}
}

type iotest struct{}

func (iotest) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// testBodyStreamsMultiMiB reads a 9 MiB body in small reads while the
// message is leased and recorded meanwhile: Body is a stream, not a copy.
func testBodyStreamsMultiMiB(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	const size = 9<<20 + 3
	id, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), newPattern(9, size))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ts.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want := newPattern(9, size)
	buf, wbuf := make([]byte, 1000), make([]byte, 1000)
	var total int64
	for i := 0; ; i++ {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := io.ReadFull(want, wbuf[:n]); werr != nil || !bytes.Equal(buf[:n], wbuf[:n]) {
				t.Fatalf("body differs at offset %d", total)
			}
			total += int64(n)
		}
		if i == 10 {
			// The store stays usable while a body is being read.
			if _, err := ts.Lease(ts.clock.Now(), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != size {
		t.Errorf("read %d bytes, want %d", total, size)
	}
}

// testBodySeeks: a sender may rewind the body to any offset (a second
// transaction on one connection, RFC 5321 §4.5.3.1.10).
func testBodySeeks(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	body := make([]byte, 1<<20+777)
	for i := range body {
		body[i] = byte(i % 251)
	}
	id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), string(body))
	rc, err := ts.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sk, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("Body returned a %T, not an io.ReadSeeker", rc)
	}
	head := make([]byte, 100)
	if _, err := io.ReadFull(sk, head); err != nil {
		t.Fatal(err)
	}
	if cur, err := sk.Seek(0, io.SeekCurrent); err != nil || cur != 100 {
		t.Fatalf("Seek(0, current) = %d, %v; want 100", cur, err)
	}
	for _, off := range []int64{0, 1, 64<<10 - 1, 64 << 10, 256<<10 + 5, 1 << 20, int64(len(body))} {
		if _, err := sk.Seek(off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d): %v", off, err)
		}
		rest, err := io.ReadAll(sk)
		if err != nil || !bytes.Equal(rest, body[off:]) {
			t.Fatalf("after Seek(%d): %d bytes, %v; want %d", off, len(rest), err, len(body)-int(off))
		}
	}
}

// testConcurrentEnqueues: 32 concurrent submitters (the group commit's
// case) each get a distinct id whose message is complete.
func testConcurrentEnqueues(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	const workers, each = 32, 10
	var mu sync.Mutex
	seen := map[queue.ID]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf("from %d, message %d", w, i)
				id, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if _, dup := seen[id]; dup {
					t.Errorf("id %s given twice", id)
				}
				seen[id] = body
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d ids, want %d", len(seen), workers*each)
	}
	for id, body := range seen {
		if got := string(ts.body(t, id)); got != body {
			t.Fatalf("body of %s = %q, want %q", id, got, body)
		}
	}
	if st, _ := ts.Stats(); st.Queued != workers*each {
		t.Errorf("queued = %d, want %d", st.Queued, workers*each)
	}
}

func testClosedStore(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("a@example.com", "b@example.org"), "x")
	ts.Close()
	if _, err := ts.Enqueue(envelope("a@example.com", "b@example.org"), strings.NewReader("x")); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
	if _, err := ts.Get(id); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
}
