package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"mailq/queue"
)

// TestHoldOf250000IDs: a list of 250,000 ids (issue 18 item 4: it failed
// with "bad request body: unexpected EOF", a 4 MiB limit it did not name)
// is applied, each id with its own result; the real messages among them
// are held and the unknown ones reported.
func TestHoldOf250000IDs(t *testing.T) {
	d := startDaemon(t, Options{})
	var real []queue.ID
	for range 3 {
		id, err := d.store.Enqueue(env("a@example.com", "b@example.org"), strings.NewReader("x\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		real = append(real, id)
	}
	const n = 250000
	ids := make([]queue.ID, 0, n)
	for i := range n {
		ids = append(ids, queue.ID(fmt.Sprintf("%016x", 1<<40+i)))
	}
	ids[0], ids[n/2], ids[n-1] = real[0], real[1], real[2]
	reply, err := d.client.Action(context.Background(), "hold", ids, false)
	if err != nil {
		t.Fatalf("hold of %d ids: %v", n, err)
	}
	if reply.Count != 3 || len(reply.Results) != n {
		t.Fatalf("hold of %d ids: count %d, %d results; want 3 and %d", n, reply.Count, len(reply.Results), n)
	}
	for i, res := range reply.Results {
		if res.ID != ids[i] {
			t.Fatalf("result %d is for %s, want %s", i, res.ID, ids[i])
		}
		isReal := i == 0 || i == n/2 || i == n-1
		if isReal != (res.Error == "") || (!isReal && !strings.Contains(res.Error, "no such message")) {
			t.Fatalf("result %d = %+v", i, res)
		}
	}
	st, err := d.store.Stats()
	if err != nil || st.Held != 3 || st.Queued != 0 {
		t.Errorf("stats = %+v, %v; want the 3 held", st, err)
	}
}

// TestActionRequestTooLarge: a request over the limit is refused before
// anything is applied, with the limit and how to split the list.
func TestActionRequestTooLarge(t *testing.T) {
	d := startDaemon(t, Options{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
	}}}
	body := strings.NewReader(`{"ids":["` + strings.Repeat("0", maxActionBody) + `"]}`)
	resp, err := hc.Post("http://mailq/v1/hold", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	fmt.Fprint(&buf, resp.Status, " ")
	b := make([]byte, 4096)
	k, _ := resp.Body.Read(b)
	buf.Write(b[:k])
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(buf.String(), "64 MiB") || !strings.Contains(buf.String(), "split") {
		t.Errorf("reply = %s; want 413 naming the 64 MiB limit and how to split", buf.String())
	}
}
