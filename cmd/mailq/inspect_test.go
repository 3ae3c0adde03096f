package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCatAndSummary (issue 12, "what Postfix users reach for"): cat prints
// the stored message as it will be sent, whole or in part; summary counts
// the recipients still to do by domain, sender or route and by age, as
// qshape does.
func TestCatAndSummary(t *testing.T) {
	sink := startOpsSink(t, "cat", false)
	cfg := testConfig(t, t.TempDir(), sinkRoute(sink.port))
	startOpsDaemon(t, cfg)

	a := enqueue(t, cfg, "me@example.com", "defer-1@alpha.test", "defer-2@alpha.test", "defer-3@beta.test")
	b := enqueue(t, cfg, "you@example.net", "defer-4@alpha.test", "ok@beta.test")
	eventually(t, 20*time.Second, "both deferred", func() (bool, string) {
		x, y := showMessage(t, cfg, a), showMessage(t, cfg, b)
		return x.Status == "deferred" && y.Status == "deferred", x.Status + " " + y.Status
	})

	whole := mustCtl(t, cfg, "", "cat", a)
	head := mustCtl(t, cfg, "", "cat", a, "--headers")
	body := mustCtl(t, cfg, "", "cat", a, "--body")
	if !strings.HasPrefix(whole, "Received: ") || !strings.Contains(whole, "Subject: ops test\r\n") || !strings.HasSuffix(whole, "\r\n\r\nHello.\r\n") {
		t.Errorf("cat printed %q; want the stored message with its Received: line", whole)
	}
	if head+body != whole || !strings.HasSuffix(head, "\r\n\r\n") || body != "Hello.\r\n" {
		t.Errorf("cat --headers %q and --body %q do not split %q at the blank line", head, body, whole)
	}
	if r := runCtl(t, buildMailqctl(t), cfg, "", "cat", "ffffffffffffffff"); r.code != 1 || !strings.Contains(r.stderr, "no such message") {
		t.Errorf("cat of an unknown id: exit %d, stderr %q", r.code, r.stderr)
	}

	out := mustCtl(t, cfg, "", "summary")
	t.Logf("mailqctl summary:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantHeader := []string{"DOMAIN", "T", "5m", "10m", "20m", "40m", "80m", "160m", "320m", "640m", "1280m", "1280m+"}
	if strings.Join(strings.Fields(lines[0]), " ") != strings.Join(wantHeader, " ") {
		t.Errorf("summary header %q, want %v", lines[0], wantHeader)
	}
	want := []string{"TOTAL 4 4 0 0 0 0 0 0 0 0 0", "alpha.test 3 3 0 0 0 0 0 0 0 0 0", "beta.test 1 1 0 0 0 0 0 0 0 0 0"}
	for i, w := range want {
		if i+1 >= len(lines) || strings.Join(strings.Fields(lines[i+1]), " ") != w {
			t.Errorf("summary row %d: %q, want %q", i+1, lines[min(i+1, len(lines)-1)], w)
		}
	}
	var sum struct {
		By   string `json:"by"`
		Rows []struct {
			Key   string `json:"key"`
			Total int    `json:"total"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, cfg, "", "summary", "--by", "sender", "--json")), &sum); err != nil ||
		sum.By != "sender" || len(sum.Rows) != 2 || sum.Rows[0].Key != "example.com" || sum.Rows[0].Total != 3 || sum.Rows[1].Total != 1 {
		t.Errorf("summary --by sender --json = %+v, %v", sum, err)
	}
	if out := mustCtl(t, cfg, "", "summary", "--by", "route"); !strings.Contains(strings.Join(strings.Fields(out), " "), "sink 4 4") {
		t.Errorf("summary --by route:\n%s", out)
	}
}
