package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestSendmailWhileDaemonDownIsQueuedAtStart is issue 5's daemon-level
// check: with mailq stopped, sendmail -t (as a "sendmail" link and as
// `mailqctl sendmail`) exits 0 with the message durable in the maildrop;
// once mailq starts it takes the files, and -N/-R/-V reach the queue and
// the next hop.
func TestSendmailWhileDaemonDownIsQueuedAtStart(t *testing.T) {
	sink := startOpsSink(t, "next", false)
	dir := t.TempDir()
	cfg := testConfig(t, dir, sinkRoute(sink.port))
	maildrop := filepath.Join(dir, "maildrop")
	// The maildrop exists before the daemon ever ran, as tmpfiles.d makes it.
	for _, sub := range []string{"tmp", "new", "failed"} {
		if err := os.MkdirAll(filepath.Join(maildrop, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ctl := buildMailqctl(t)
	sendmail := filepath.Join(dir, "bin", "sendmail")
	if err := os.MkdirAll(filepath.Dir(sendmail), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ctl, sendmail); err != nil {
		t.Fatal(err)
	}

	// Each message has one recipient the sink accepts (so the stored body
	// can be read there) and two it defers (so the message stays in the
	// queue for `list`); the Bcc one must be gone from the headers.
	cases := []struct {
		name   string
		bin    string
		args   []string
		tag    string
		notify string
		ret    string
	}{
		{"sendmail link", sendmail, []string{"-t", "-i", "-f", "app@client.test", "-N", "success,failure", "-R", "hdrs", "-V", "env-link-1"},
			"link", "SUCCESS,FAILURE", "HDRS"},
		{"mailqctl sendmail", ctl, []string{"sendmail", "-t", "-oi", "-f", "app@client.test", "-N", "FAILURE,DELAY", "-R", "FULL", "-V", "env-ctl-2"},
			"ctl", "FAILURE,DELAY", "FULL"},
	}
	for _, c := range cases {
		msg := fmt.Sprintf("From: App <app@client.test>\nTo: to-%[1]s@dest.test\nCc: defer-cc-%[1]s@dest.test\nBcc: defer-bcc-%[1]s@dest.test\nSubject: down %[1]s\n\n.\nbody of %[1]s\n", c.tag)
		r := runCtl(t, c.bin, cfg, msg, c.args...)
		if r.code != 0 {
			t.Fatalf("%s with the daemon down: exit %d, want 0\nstderr: %s", c.name, r.code, r.stderr)
		}
	}
	dropped, err := os.ReadDir(filepath.Join(maildrop, "new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != len(cases) {
		t.Fatalf("maildrop new/ holds %d files after %d sendmail runs with the daemon down, want one each", len(dropped), len(cases))
	}

	d, _ := startOpsDaemon(t, cfg)
	keepLogs(d)
	listed := map[string]shownMessage{} // by envid
	eventually(t, 15*time.Second, "both maildrop files taken into the queue", func() (bool, string) {
		left, _ := os.ReadDir(filepath.Join(maildrop, "new"))
		for k := range listed {
			delete(listed, k)
		}
		out := mustCtl(t, cfg, "", "list", "--json")
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var m shownMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("mailqctl list --json line %q: %v", sc.Text(), err)
			}
			if strings.HasPrefix(m.Envid, "env-") { // not the DSNs -N SUCCESS asks for
				listed[m.Envid] = m
			}
		}
		return len(left) == 0 && len(listed) == len(cases), fmt.Sprintf("%d files left in new/, list --json: %s", len(left), out)
	})
	if failed, _ := os.ReadDir(filepath.Join(maildrop, "failed")); len(failed) != 0 {
		t.Errorf("maildrop failed/ holds %d files, want none", len(failed))
	}

	for _, c := range cases {
		envid := c.args[len(c.args)-1]
		m, ok := listed[envid]
		if !ok {
			t.Errorf("%s: no queued message with envid %q", c.name, envid)
			continue
		}
		m = showMessage(t, cfg, m.ID)
		if m.Sender != "app@client.test" || m.Ret != c.ret {
			t.Errorf("%s: sender %q ret %q, want app@client.test and %s", c.name, m.Sender, m.Ret, c.ret)
		}
		var rcpts []string
		for _, rc := range m.Recipients {
			rcpts = append(rcpts, rc.Address)
			if rc.Notify != c.notify {
				t.Errorf("%s: %s notify %q, want %q", c.name, rc.Address, rc.Notify, c.notify)
			}
		}
		sort.Strings(rcpts)
		want := []string{"defer-bcc-" + c.tag + "@dest.test", "defer-cc-" + c.tag + "@dest.test", "to-" + c.tag + "@dest.test"}
		if strings.Join(rcpts, " ") != strings.Join(want, " ") {
			t.Errorf("%s: recipients %v, want To, Cc and Bcc %v", c.name, rcpts, want)
		}

		// The copy the next hop got: DSN parameters on the wire, Bcc gone,
		// Date and Message-ID added, the lone dot kept (-i / -oi).
		to := "to-" + c.tag + "@dest.test"
		var got []sinkMessage
		eventually(t, 15*time.Second, c.name+": delivered to "+to, func() (bool, string) {
			got = sink.messagesTo(to)
			return len(got) == 1, fmt.Sprintf("%d copies", len(got))
		})
		wire := got[0]
		if wire.EnvID != envid || wire.Ret != c.ret || wire.Notify[to] != c.notify {
			t.Errorf("%s: next hop saw ENVID=%q RET=%q NOTIFY=%q, want %s %s %s", c.name, wire.EnvID, wire.Ret, wire.Notify[to], envid, c.ret, c.notify)
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(wire.Data, "\r\n", "\n"), "\n\n")
		lower := "\n" + strings.ToLower(head)
		for _, h := range []string{"\nreceived:", "\ndate:", "\nmessage-id:", "\ncc: defer-cc-"} {
			if !strings.Contains(lower, h) {
				t.Errorf("%s: delivered header lacks %q:\n%s", c.name, strings.TrimPrefix(h, "\n"), head)
			}
		}
		if strings.Contains(lower, "\nbcc:") || strings.Contains(wire.Data, "defer-bcc") {
			t.Errorf("%s: the Bcc recipient shows in the delivered message:\n%s", c.name, head)
		}
		if !strings.HasPrefix(body, ".\nbody of "+c.tag) {
			t.Errorf("%s: body %q, want the lone dot kept", c.name, body)
		}
	}
	d.stop(t)
}
