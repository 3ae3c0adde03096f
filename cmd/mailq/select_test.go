package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestSelectionsAndRecipientActions (issue 12 item 7 and "selections
// without jq"), through the real binaries: --to/--from in both forms, --to
// matching only recipients still to do, delete and bounce of the matching
// recipients only, selections on hold/release/retry, flush --to.
func TestSelectionsAndRecipientActions(t *testing.T) {
	sink := startOpsSink(t, "sel", false)
	cfg := testConfig(t, t.TempDir(), sinkRoute(sink.port))
	d, _ := startOpsDaemon(t, cfg)
	book := keepLogs(d)

	// mixed: delivered at ok.test, deferred at defer.test (the sink defers
	// local parts starting with "defer").
	mixed := enqueue(t, cfg, "me@example.com", "ok@ok.test", "defer-a@defer.test", "defer-b@other.test")
	other := enqueue(t, cfg, "you@example.net", "defer-c@other.test")
	eventually(t, 20*time.Second, "both deferred", func() (bool, string) {
		a, b := showMessage(t, cfg, mixed), showMessage(t, cfg, other)
		return a.Status == "deferred" && b.Status == "deferred", a.Status + " " + b.Status
	})
	ids := func(args ...string) string {
		return strings.TrimSpace(mustCtl(t, cfg, "", append([]string{"list", "--ids"}, args...)...))
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "@ok.test"}, ""}, // delivered there: not mail for ok.test any more
		{[]string{"--to", "defer.test"}, mixed},
		{[]string{"--to", "@other.test"}, mixed + "\n" + other},
		{[]string{"--from", "@example.net"}, other},
		{[]string{"--from", "example.com"}, mixed},
	} {
		if got := ids(c.args...); got != c.want {
			t.Errorf("list --ids %v = %q, want %q", c.args, got, c.want)
		}
	}

	// Selections on whole-message actions.
	if out := mustCtl(t, cfg, "", "hold", "--from", "@example.net"); !strings.Contains(out, other+": held") {
		t.Errorf("hold --from @example.net printed %q", out)
	}
	if got := ids("--status", "held"); got != other {
		t.Errorf("held after hold --from = %q, want %q", got, other)
	}
	mustCtl(t, cfg, "", "release", "--status", "held")
	if out := mustCtl(t, cfg, "", "flush", "--to", "@defer.test"); !strings.Contains(out, "1 deferred message for @defer.test due now") {
		t.Errorf("flush --to printed %q", out)
	}
	book.waitFor(t, 0, "operator: retry", map[string]any{"queue_id": mixed}, 10*time.Second)

	// delete --to removes only the matching recipients.
	eventually(t, 20*time.Second, "mixed deferred again", func() (bool, string) {
		m := showMessage(t, cfg, mixed)
		return m.Status == "deferred", m.Status
	})
	if out := mustCtl(t, cfg, "", "delete", "--to", "@defer.test"); !strings.Contains(out, mixed+": recipients matching @defer.test deleted") {
		t.Errorf("delete --to printed %q", out)
	}
	m := showMessage(t, cfg, mixed)
	var addrs []string
	for _, r := range m.Recipients {
		addrs = append(addrs, r.Address+"="+r.State)
	}
	if strings.Join(addrs, ",") != "ok@ok.test=delivered,defer-b@other.test=deferred" {
		t.Errorf("after delete --to @defer.test the recipients are %v", addrs)
	}

	// bounce --to ID bounces only that recipient; the sender is notified.
	eventually(t, 20*time.Second, "mixed deferred again", func() (bool, string) {
		m := showMessage(t, cfg, mixed)
		return m.Status == "deferred", m.Status
	})
	another := enqueue(t, cfg, "me@example.com", "defer-d@other.test", "defer-e@third.test")
	eventually(t, 20*time.Second, "another deferred", func() (bool, string) {
		m := showMessage(t, cfg, another)
		return m.Status == "deferred", m.Status
	})
	if out := mustCtl(t, cfg, "", "bounce", "--to", "third.test", another); !strings.Contains(out, "recipients matching third.test bounced") {
		t.Errorf("bounce --to printed %q", out)
	}
	var shown struct {
		Recipients []struct {
			Address     string `json:"address"`
			State       string `json:"state"`
			NextAttempt string `json:"next_attempt"`
		} `json:"recipients"`
	}
	json.Unmarshal([]byte(mustCtl(t, cfg, "", "show", another, "--json")), &shown)
	if len(shown.Recipients) != 2 || shown.Recipients[0].State != "deferred" || shown.Recipients[1].State != "bounced" {
		t.Errorf("after bounce --to third.test: %+v; want defer-d deferred, defer-e bounced", shown.Recipients)
	}
	if next, err := time.Parse(time.RFC3339Nano, shown.Recipients[0].NextAttempt); err != nil || next.Before(time.Now().Add(30*time.Minute)) {
		t.Errorf("the recipient not bounced lost its schedule: next attempt %q (%v), want about an hour away", shown.Recipients[0].NextAttempt, err)
	}
	book.waitFor(t, 0, "bounce", map[string]any{"queue_id": another, "recipient": "defer-e@third.test", "status": "5.0.0"}, 10*time.Second)
	book.waitFor(t, 0, "delivery status notification queued", map[string]any{"queue_id": another}, 10*time.Second)
}
