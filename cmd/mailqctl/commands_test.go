package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailq/control"
	"mailq/control/server"
	"mailq/queue"
)

// deferOnce leases id and records a 450 for b@example.org, so the message
// has an attempt with replies and a deferred recipient.
func (d *daemon) deferOnce(t *testing.T, id queue.ID) {
	t.Helper()
	leases, err := d.store.Lease(time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.Message.ID != id {
			continue
		}
		reply := &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "try later"}
		at := queue.Attempt{Time: time.Now(), Route: "relay", Remote: "127.0.0.1:2525", TLS: "TLS1.3", DurationMS: 120,
			Recipients: []string{"b@example.org"},
			Replies:    []queue.StepReply{{Command: "RCPT TO:<b@example.org>", Reply: *reply}}}
		outs := []queue.Outcome{{Recipient: "b@example.org", Decision: queue.DecideRetry, RetryAt: time.Now().Add(5 * time.Minute), Reply: reply}}
		if err := d.store.RecordOutcome(l, at, outs); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("message %s was not leased", id)
}

func TestEnqueueThenShow(t *testing.T) {
	d := startDaemon(t, server.Options{})
	msg := "From: a@example.com\r\nSubject: Hello there\r\n\r\nbody\r\n"
	id := strings.TrimSpace(d.mustCtl(t, msg, "enqueue", "--from", "a@example.com", "--to", "b@example.org",
		"--to", "c@example.org", "--notify", "failure,delay", "--ret", "hdrs", "--envid", "e-1"))
	if id == "" || strings.ContainsAny(id, " \n{") {
		t.Fatalf("enqueue printed %q, want only the id", id)
	}

	var m map[string]any
	if err := json.Unmarshal([]byte(d.mustCtl(t, "", "show", id, "--json")), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": id, "status": "queued", "sender": "a@example.com", "held": false, "envid": "e-1",
		"ret": "HDRS", "source": "control"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("show --json %s = %#v, want %#v", k, m[k], v)
		}
	}
	if size, _ := m["size"].(float64); size < float64(len(msg)) {
		t.Errorf("size = %v, want at least %d (the body plus Received:)", m["size"], len(msg))
	}
	if _, err := time.Parse(time.RFC3339, m["arrival"].(string)); err != nil {
		t.Errorf("arrival %v: %v", m["arrival"], err)
	}
	rcpts, _ := m["recipients"].([]any)
	if len(rcpts) != 2 {
		t.Fatalf("recipients = %#v", m["recipients"])
	}
	r0 := rcpts[0].(map[string]any)
	for k, v := range map[string]any{"address": "b@example.org", "state": "pending", "notify": "FAILURE,DELAY", "attempts": 0.0, "last_reply": nil} {
		if r0[k] != v {
			t.Errorf("recipient %s = %#v, want %#v", k, r0[k], v)
		}
	}
	if h, _ := m["headers"].(map[string]any); h["Subject"] != "Hello there" {
		t.Errorf("headers = %#v, want the Subject", m["headers"])
	}

	human := d.mustCtl(t, "", "show", id)
	for _, s := range []string{id, "queued", "b@example.org", "c@example.org", "pending", "Hello there", "FAILURE,DELAY", "attempts (0)"} {
		if !strings.Contains(human, s) {
			t.Errorf("show output lacks %q:\n%s", s, human)
		}
	}

	var reply map[string]string
	if err := json.Unmarshal([]byte(d.mustCtl(t, "x\r\n", "enqueue", "--json", "--from", "", "--to", "b@example.org")), &reply); err != nil || reply["id"] == "" {
		t.Errorf("enqueue --json = %v, %v", reply, err)
	} else if got, _ := d.store.Get(queue.ID(reply["id"])); got == nil || got.Sender != "" {
		t.Errorf("--from \"\" stored sender %+v, want the null sender", got)
	}
}

func TestListAndShowAttempts(t *testing.T) {
	d := startDaemon(t, server.Options{})
	deferred := d.enqueue(t, "a@example.com", "b@example.org")
	d.deferOnce(t, deferred)
	queued := d.enqueue(t, "", "x@other.example")

	table := d.mustCtl(t, "", "list")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("list table:\n%s", table)
	}
	for _, s := range []string{string(deferred), "deferred", "a@example.com", "in 4m", "450 4.2.1 try later", "1/1"} {
		if !strings.Contains(lines[1], s) {
			t.Errorf("list row %q lacks %q", lines[1], s)
		}
	}
	// Each recipient still to do follows its message, with its last reply.
	for _, s := range []string{"b@example.org", "deferred", "in 4m", "450 4.2.1 try later"} {
		if !strings.Contains(lines[2], s) || strings.Contains(lines[2], string(deferred)) {
			t.Errorf("recipient row %q lacks %q", lines[2], s)
		}
	}
	for _, s := range []string{string(queued), "queued", "<>"} {
		if !strings.Contains(lines[3], s) {
			t.Errorf("list row %q lacks %q", lines[3], s)
		}
	}
	if !strings.Contains(lines[4], "x@other.example") {
		t.Errorf("recipient row %q lacks x@other.example", lines[4])
	}
	// Columns are aligned: the STATUS header starts where each row's status does.
	col := strings.Index(lines[0], "STATUS")
	if !strings.HasPrefix(lines[1][col:], "deferred") || !strings.HasPrefix(lines[2][col:], "deferred") || !strings.HasPrefix(lines[3][col:], "queued") {
		t.Errorf("columns not aligned:\n%s", table)
	}
	if ids := d.mustCtl(t, "", "list", "--ids"); ids != string(deferred)+"\n"+string(queued)+"\n" {
		t.Errorf("list --ids = %q", ids)
	}

	var objs []queue.Message
	for _, line := range strings.Split(strings.TrimSpace(d.mustCtl(t, "", "list", "--json")), "\n") {
		var m queue.Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("list --json line %q: %v", line, err)
		}
		objs = append(objs, m)
	}
	if len(objs) != 2 || objs[0].ID != deferred || objs[0].Status != queue.StatusDeferred ||
		objs[0].Recipients[0].LastReply == nil || objs[0].Recipients[0].LastReply.Code != 450 ||
		objs[0].NextAttempt.IsZero() || objs[0].Attempts != nil {
		t.Errorf("list --json = %+v", objs)
	}

	filters := []struct {
		args []string
		want []queue.ID
	}{
		{[]string{"--status", "deferred"}, []queue.ID{deferred}},
		{[]string{"--status", "queued"}, []queue.ID{queued}},
		{[]string{"--to", "@other.example"}, []queue.ID{queued}},
		{[]string{"--to", "other.example"}, []queue.ID{queued}},
		{[]string{"--from", "@example.com"}, []queue.ID{deferred}},
		{[]string{"--from", "<>"}, []queue.ID{queued}},
		{[]string{"--from", "a@example.com"}, []queue.ID{deferred}},
		{[]string{"--older", "1h"}, nil},
		{[]string{"--older", "1d"}, nil},
		{[]string{"--older", "0d"}, []queue.ID{deferred, queued}},
	}
	for _, f := range filters {
		out := d.mustCtl(t, "", append([]string{"list", "--json"}, f.args...)...)
		var got []queue.ID
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var m queue.Message
			json.Unmarshal([]byte(line), &m)
			got = append(got, m.ID)
		}
		if strings.Join(idStrings(got), ",") != strings.Join(idStrings(f.want), ",") {
			t.Errorf("list %v = %v, want %v", f.args, got, f.want)
		}
	}

	show := d.mustCtl(t, "", "show", string(deferred))
	for _, s := range []string{"deferred", "route relay", "remote 127.0.0.1:2525", "TLS1.3", "120ms",
		"RCPT TO:<b@example.org> -> 450 4.2.1 try later", "attempts (1)"} {
		if !strings.Contains(show, s) {
			t.Errorf("show lacks %q:\n%s", s, show)
		}
	}
	var m map[string]any
	json.Unmarshal([]byte(d.mustCtl(t, "", "show", "--json", string(deferred))), &m)
	ats, _ := m["attempts"].([]any)
	if len(ats) != 1 {
		t.Fatalf("show --json attempts = %#v", m["attempts"])
	}
	at := ats[0].(map[string]any)
	for k, v := range map[string]any{"route": "relay", "remote": "127.0.0.1:2525", "tls": "TLS1.3", "duration_ms": 120.0} {
		if at[k] != v {
			t.Errorf("attempt %s = %#v, want %#v", k, at[k], v)
		}
	}
	rep := at["replies"].([]any)[0].(map[string]any)
	if rep["command"] != "RCPT TO:<b@example.org>" || rep["code"] != 450.0 || rep["enhanced"] != "4.2.1" || rep["text"] != "try later" {
		t.Errorf("attempt reply = %#v", rep)
	}
}

func idStrings(ids []queue.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func TestActionCommands(t *testing.T) {
	var bounced []queue.ID
	d := startDaemon(t, server.Options{Bounce: func(_ context.Context, id queue.ID) error {
		bounced = append(bounced, id)
		return nil
	}})
	a := d.enqueue(t, "a@example.com", "b@example.org")
	b := d.enqueue(t, "a@example.com", "b@example.org")
	d.deferOnce(t, a)

	// hold with ids from standard input
	out := d.mustCtl(t, string(a)+"\n\n"+string(b)+"\n", "hold", "-")
	if !strings.Contains(out, string(a)+": held") || !strings.Contains(out, string(b)+": held") {
		t.Errorf("hold - printed %q", out)
	}
	if n := strings.Count(d.mustCtl(t, "", "list", "--json", "--status", "held"), "\n"); n != 2 {
		t.Errorf("%d held messages after hold -, want 2", n)
	}
	// retry leaves a held message held
	d.mustCtl(t, "", "retry", string(a))
	if m, _ := d.store.Get(a); !m.Held {
		t.Error("retry released a held message")
	}
	d.mustCtl(t, "", "release", string(a), string(b))
	if m, _ := d.store.Get(a); m.Held || m.NextAttempt.After(time.Now()) {
		t.Errorf("after release: held %v, next attempt %v; want due now", m.Held, m.NextAttempt)
	}
	d.deferOnce(t, a)
	if out := d.mustCtl(t, "", "flush"); !strings.Contains(out, "1 deferred message due now") {
		t.Errorf("flush printed %q", out)
	}
	if m, _ := d.store.Get(a); m.NextAttempt.After(time.Now()) {
		t.Errorf("after flush next attempt %v", m.NextAttempt)
	}
	// b is still leased by deferOnce (in flight), so only a is due now.
	if out := d.mustCtl(t, "", "retry", "--all"); !strings.Contains(out, "1 message due now") {
		t.Errorf("retry --all printed %q", out)
	}
	var reply control.ActionReply
	if err := json.Unmarshal([]byte(d.mustCtl(t, "", "bounce", "--json", string(b))), &reply); err != nil || reply.Count != 1 {
		t.Errorf("bounce --json = %+v, %v", reply, err)
	}
	if len(bounced) != 1 || bounced[0] != b {
		t.Errorf("bounced %v, want [%s]", bounced, b)
	}
	d.mustCtl(t, "", "delete", string(a))
	if _, err := d.store.Get(a); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	// one unknown id among good ones: the good one is done, the exit is 1
	r := d.ctl(t, "", "hold", string(a), string(b))
	if r.code != 1 || !strings.Contains(r.stderr, "no such message") || !strings.Contains(r.stdout, string(b)+": held") {
		t.Errorf("hold deleted+live = exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestStats(t *testing.T) {
	d := startDaemon(t, server.Options{MaildropFailed: func() int { return 3 }})
	d.enqueue(t, "a@example.com", "b@example.org")
	held := d.enqueue(t, "a@example.com", "b@example.org")
	d.store.Hold(held)

	var m map[string]any
	if err := json.Unmarshal([]byte(d.mustCtl(t, "", "stats", "--json")), &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range []string{"queued", "active", "deferred", "held", "live", "done", "oldest_age_seconds",
		"delivered_total", "bounced_total", "deferred_total", "maildrop_failed"} {
		if _, ok := m[k]; !ok {
			t.Errorf("stats --json lacks %q (has %v)", k, keys)
		}
	}
	for k, v := range map[string]float64{"queued": 1, "held": 1, "live": 2, "done": 0, "maildrop_failed": 3} {
		if m[k] != v {
			t.Errorf("stats %s = %v, want %v", k, m[k], v)
		}
	}
	human := d.mustCtl(t, "", "stats")
	for _, s := range []string{"queued:", "held:", "maildrop failed:", "3"} {
		if !strings.Contains(human, s) {
			t.Errorf("stats output lacks %q:\n%s", s, human)
		}
	}
}

func TestExitStatuses(t *testing.T) {
	d := startDaemon(t, server.Options{})
	unknown := strings.Repeat("f", len(d.enqueue(t, "a@example.com", "b@example.org")))
	nowhere := []string{"--socket", d.dir + "/nobody-here.sock"}
	tests := []struct {
		name   string
		args   []string
		global []string // replaces the daemon's --socket
		code   int
		stderr string
	}{
		{"no command", nil, nil, 2, "no command"},
		{"unknown command", []string{"frob"}, nil, 2, "unknown command"},
		{"unknown flag", []string{"list", "--frob"}, nil, 2, "frob"},
		{"bad status", []string{"list", "--status", "lost"}, nil, 2, "unknown --status"},
		{"bad age", []string{"list", "--older", "2x"}, nil, 2, "such as 30m, 2h or 3d"},
		{"show without id", []string{"show"}, nil, 2, "exactly one"},
		{"hold without id", []string{"hold"}, nil, 2, "needs message ids"},
		{"retry ids and all", []string{"retry", "--all", "x"}, nil, 2, "not several"},
		{"to with a bad form", []string{"list", "--to", "a@"}, nil, 2, "want user@example.com, @example.com or example.com"},
		{"from with two domains", []string{"list", "--from", "@a@b"}, nil, 2, "a domain is written"},
		{"ids and filters", []string{"hold", "--status", "deferred", "x"}, nil, 2, "not both"},
		{"enqueue without from", []string{"enqueue", "--to", "b@example.org"}, nil, 2, "--from"},
		{"enqueue without to", []string{"enqueue", "--from", "a@example.com"}, nil, 2, "--to"},
		{"show unknown id", []string{"show", unknown}, nil, 1, "no such message"},
		{"hold unknown id", []string{"hold", unknown}, nil, 1, "no such message"},
		{"enqueue bad address", []string{"enqueue", "--from", "a@example.com", "--to", "not-an-address"}, nil, 1, "refused"},
		{"list unreachable", []string{"list"}, nowhere, 3, "not reachable"},
		{"stats unreachable", []string{"stats"}, nowhere, 3, "not reachable"},
		{"enqueue unreachable", []string{"enqueue", "--from", "a@example.com", "--to", "b@example.org"}, nowhere, 3, "not reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r result
			if tt.global != nil {
				r = exe(t, "mailqctl", nil, "x\r\n", append(tt.global, tt.args...)...)
			} else {
				r = d.ctl(t, "x\r\n", tt.args...)
			}
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if tt.code == 3 && r.stdout != "" {
				t.Errorf("printed %q although the daemon was not reached", r.stdout)
			}
		})
	}
}

func TestSocketFromConfig(t *testing.T) {
	d := startDaemon(t, server.Options{})
	id := d.enqueue(t, "a@example.com", "b@example.org")
	for _, run := range []func() result{
		func() result { return exe(t, "mailqctl", nil, "", "--config", d.config, "list") },
		func() result { return exe(t, "mailqctl", []string{"MAILQ_CONFIG=" + d.config}, "", "list") },
	} {
		if r := run(); r.code != 0 || !strings.Contains(r.stdout, string(id)) {
			t.Errorf("list via configuration: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	}
}

func TestUnauthorisedPeerRefused(t *testing.T) {
	d := startDaemon(t, server.Options{Authorize: func(p server.Peer) error {
		return errors.New("uid 4321 may not use the mailq control socket")
	}})
	r := d.ctl(t, "", "stats")
	if r.code != 1 || !strings.Contains(r.stderr, "may not use the mailq control socket") {
		t.Errorf("refused peer: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestUnprivilegedUserRefused runs mailqctl as nobody against the default
// check; it needs root to switch users, which CI has.
func TestUnprivilegedUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Log("not root: the real-uid refusal is covered by control's GroupAuthorizer test only")
		return
	}
	d := startDaemon(t, server.Options{})
	// Let nobody reach the socket, so the refusal comes from the peer check.
	os.Chmod(d.dir, 0o755)
	os.Chmod(d.socket, 0o666)
	cmd := exec.Command(binDir+"/mailqctl", "--socket", d.socket, "stats")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	r := exeCmd(t, cmd, nil, "")
	if r.code != 1 || !strings.Contains(r.stderr, "uid 65534 may not use the mailq control socket") {
		t.Errorf("nobody: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Issue 10: list and show never hand terminal escape sequences from a
// message (subject, sender, server reply) to the operator's terminal;
// --json stays exact.
func TestListAndShowEscapeControlCharacters(t *testing.T) {
	d := startDaemon(t, server.Options{})
	msg := "From: a@example.com\r\nSubject: evil\x1b]0;owned\x07\x1b[2J\r\n\r\nbody\r\n"
	id := strings.TrimSpace(d.mustCtl(t, msg, "enqueue", "--from", "a@example.com", "--to", "b@example.org"))
	leases, err := d.store.Lease(time.Now().Add(time.Second), 10)
	if err != nil || len(leases) != 1 {
		t.Fatalf("lease: %v %d", err, len(leases))
	}
	reply := &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "busy\x1b[2J\x1b]0;owned\x07"}
	at := queue.Attempt{Time: time.Now(), Route: "relay", Recipients: []string{"b@example.org"},
		Replies: []queue.StepReply{{Command: "RCPT TO:<b@example.org>", Reply: *reply}}}
	if err := d.store.RecordOutcome(leases[0], at, []queue.Outcome{{Recipient: "b@example.org", Decision: queue.DecideRetry,
		RetryAt: time.Now().Add(time.Hour), Reply: reply}}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"show", id}, {"list"}} {
		out := d.mustCtl(t, "", args...)
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s prints raw control characters:\n%q", args[0], out)
		}
		if !strings.Contains(out, `\x1b`) {
			t.Errorf("%s does not show the escaped sequence:\n%s", args[0], out)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(d.mustCtl(t, "", "show", id, "--json")), &m); err != nil {
		t.Fatal(err)
	}
	if h, _ := m["headers"].(map[string]any); h["Subject"] != "evil\x1b]0;owned\x07\x1b[2J" {
		t.Errorf("show --json Subject = %q, want it exact", h["Subject"])
	}
}
