package submission

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"mailq/queue"
)

// needPeer finds a third-party test program or fails with how to get it.
func needPeer(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s is not installed: install it (.ci/install-peers; Debian packages swaks and postfix)", name)
	return ""
}

func countStored(t testing.TB, st queue.Store) int {
	n := 0
	if err := st.List(queue.Filter{}, func(*queue.Message) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSwaksWithAuthPlain(t *testing.T) {
	swaks := needPeer(t, "swaks")
	authFile := writeAuthFile(t)
	r := startListener(t, func(o *Options) { o.AuthFile = authFile; o.RequireAuth = true })
	host, port, _ := strings.Cut(r.addr, ":")
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--helo", "swaks.test",
		"--from", "a@example.com", "--to", "b@example.org,c@example.org",
		"--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wonderland",
		"--header", "Subject: from swaks", "--body", "hello from swaks").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks failed: %v\n%s", err, out)
	}
	i := strings.Index(string(out), "queued as ")
	if i < 0 {
		t.Fatalf("swaks transcript has no queue id:\n%s", out)
	}
	id := queue.ID(strings.Fields(string(out)[i+len("queued as "):])[0])
	m, body := r.stored(t, id)
	if len(m.Recipients) != 2 || !strings.Contains(body, "Subject: from swaks") || !strings.Contains(body, "hello from swaks") {
		t.Errorf("stored %+v body %q", m, body)
	}
	// Wrong password: swaks reports failure and nothing more is stored.
	out, err = exec.Command(swaks, "--server", host, "--port", port, "--from", "a@example.com", "--to", "b@example.org",
		"--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "535 5.7.8") {
		t.Errorf("swaks with a wrong password: err %v\n%s", err, out)
	}
	if n := countStored(t, r.store); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

func TestSmtpSourceAllStored(t *testing.T) {
	src := needPeer(t, "smtp-source")
	r := startListener(t, nil)
	const msgs = 500
	out, err := exec.Command(src, "-s", "8", "-m", fmt.Sprint(msgs), "-l", "4096",
		"-f", "a@example.com", "-t", "b@example.org", r.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	if n := countStored(t, r.store); n != msgs {
		t.Fatalf("%d messages stored, want %d", n, msgs)
	}
}
