package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file runs sendmail, mailqctl and the daemon as the users of the
// installed layout (issue 12, items 1 and 2): the sysusers.d and tmpfiles.d
// entries from systemd/ applied to a scratch root by systemd-sysusers and
// systemd-tmpfiles, /etc/mailq/mailq.toml 0640 root:mailq, and the real
// binaries run under other uids. Changing uids needs root; .ci/run runs the
// tests as root, so CI always runs it.

// layout is a scratch root with mailq installed in it.
type layout struct {
	root                      string
	config, client            string
	maildrop, sendmail, ctl   string
	daemon                    string
	mailqUID, mailqGID, dropG uint32
}

// Local users of the test: none of them exists in the scratch root, as
// application users (www-data, cron jobs) exist only in the real system.
var (
	nobody = &syscall.Credential{Uid: 65534, Gid: 65534}
)

func installLayout(t *testing.T) *layout {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("runs sendmail and the daemon under other uids, which needs root; .ci/run runs the tests as root")
	}
	for _, tool := range []string{"systemd-sysusers", "systemd-tmpfiles"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the test peers with .ci/install-peers", tool)
		}
	}
	root, err := os.MkdirTemp("", "mailq-installed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	// Other users must reach the spool and the binaries inside.
	must(t, os.Chmod(root, 0o755))
	l := &layout{root: root}
	for _, f := range []string{"sysusers.d/mailq.conf", "tmpfiles.d/mailq.conf"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "systemd", f))
		must(t, err)
		dst := filepath.Join(root, "etc", f)
		must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		must(t, os.WriteFile(dst, src, 0o644))
	}
	runTool(t, "systemd-sysusers", "--root="+root)
	runTool(t, "systemd-tmpfiles", "--create", "--root="+root)
	l.mailqUID = lookupID(t, filepath.Join(root, "etc/passwd"), "mailq", 2)
	l.mailqGID = lookupID(t, filepath.Join(root, "etc/group"), "mailq", 2)
	l.dropG = lookupID(t, filepath.Join(root, "etc/group"), "mailq-drop", 2)

	// What StateDirectory= and RuntimeDirectory= make, and the binaries
	// where make install puts them.
	mkdirOwned(t, filepath.Join(root, "var/lib/mailq"), 0o700, l.mailqUID, l.mailqGID)
	mkdirOwned(t, filepath.Join(root, "run/mailq"), 0o750, l.mailqUID, l.mailqGID)
	l.daemon = filepath.Join(root, "usr/libexec/mailq/mailq")
	l.ctl = filepath.Join(root, "usr/bin/mailqctl")
	l.sendmail = filepath.Join(root, "usr/sbin/sendmail")
	copyExecutable(t, buildMailq(t), l.daemon)
	copyExecutable(t, buildMailqctl(t), l.ctl)
	must(t, os.MkdirAll(filepath.Dir(l.sendmail), 0o755))
	must(t, os.Symlink("../bin/mailqctl", l.sendmail))

	l.maildrop = filepath.Join(root, "var/spool/mailq/maildrop")
	l.config = filepath.Join(root, "etc/mailq/mailq.toml")
	l.client = filepath.Join(root, "etc/mailq/client.toml")
	must(t, os.MkdirAll(filepath.Dir(l.config), 0o755))
	// The installed client.toml, pointed into the scratch root.
	client, err := os.ReadFile("../../systemd/client.toml")
	must(t, err)
	client = bytes.ReplaceAll(client, []byte(`"/run/`), []byte(`"`+root+`/run/`))
	client = bytes.ReplaceAll(client, []byte(`"/var/`), []byte(`"`+root+`/var/`))
	must(t, os.WriteFile(l.client, client, 0o644))
	return l
}

// writeConfig installs mailq.toml as make install does: 0640 root:mailq.
func (l *layout) writeConfig(t *testing.T, sinkPort int) {
	t.Helper()
	text := fmt.Sprintf(`data_dir = %q
submission = []
[control]
socket = %q
socket_group = ""        # the daemon's own group, mailq (the scratch root's groups are not the system's)
[maildrop]
dir = %q
poll_interval = "200ms"
[[route]]
name = "sink"
domains = ["*"]
host = "127.0.0.1"
port = %d
password = "a secret only root and mailq may read"
`, filepath.Join(l.root, "var/lib/mailq"), filepath.Join(l.root, "run/mailq/control.sock"), l.maildrop, sinkPort)
	must(t, os.WriteFile(l.config, []byte(text), 0o640))
	must(t, os.Chown(l.config, 0, int(l.mailqGID)))
}

// as runs bin as cred with the installed configuration's path in
// MAILQ_CONFIG (what /etc/mailq/mailq.toml is for the real system).
func (l *layout) as(t *testing.T, cred *syscall.Credential, stdin string, bin string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "MAILQ_CONFIG=" + l.config, "HOME=/"}
	cmd.Dir = "/"
	return runCmd(t, cmd, stdin)
}

func (l *layout) newFiles(t *testing.T) []string {
	t.Helper()
	return dirEntries(filepath.Join(l.maildrop, "new"))
}

// TestSendmailEveryUserInstalledLayout is issue 12 items 1 and 2: under the
// installed layout every local user, in the drop-in group or not, submits
// with sendmail and gets exit 0 exactly when the message is stored, with
// the daemon down and up; nobody gets more than submitting; and members
// of mailq read maildrop/failed/.
func TestSendmailEveryUserInstalledLayout(t *testing.T) {
	l := installLayout(t)
	sink := startOpsSink(t, "next", true)
	l.writeConfig(t, sink.port)

	dropper := &syscall.Credential{Uid: 65533, Gid: 65534, Groups: []uint32{l.dropG}}
	// The authorizer knows supplementary groups only from /etc/group,
	// where the scratch root's operator is not: mailq is its primary group.
	operator := &syscall.Credential{Uid: 65532, Gid: l.mailqGID}
	daemonUser := &syscall.Credential{Uid: l.mailqUID, Gid: l.mailqGID, Groups: []uint32{l.dropG}}
	users := []struct {
		name string
		cred *syscall.Credential
	}{{"nobody", nobody}, {"drop-group member", dropper}, {"operator", operator}}

	message := func(tag string) string {
		return fmt.Sprintf("From: app@client.test\nTo: %s@dest.test\nSubject: %s\n\nbody %s\n", tag, tag, tag)
	}
	submit := func(who string, cred *syscall.Credential, tag string) {
		t.Helper()
		// umask 077, as services often have: the file must still be 0640.
		r := l.as(t, cred, message(tag), "/bin/sh", "-c", `umask 077; exec "$0" "$@"`, l.sendmail, "-i", "-f", "app@client.test", tag+"@dest.test")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("sendmail as %s (uid %d): exit %d, stderr %q; want 0 and nothing on stderr", who, cred.Uid, r.code, r.stderr)
		}
	}

	// Daemon down: every user's message is stored in new/, as a file only
	// its writer and the daemon's group may read.
	for _, u := range users {
		submit(u.name, u.cred, "down-"+strconv.Itoa(int(u.cred.Uid)))
	}
	files := l.newFiles(t)
	if len(files) != len(users) {
		t.Fatalf("new/ holds %v after %d submissions with the daemon down", files, len(users))
	}
	for _, f := range files {
		var st syscall.Stat_t
		must(t, syscall.Stat(filepath.Join(l.maildrop, "new", f), &st))
		if st.Mode&0o7777 != 0o640 || st.Gid != l.dropG {
			t.Errorf("new/%s: mode %o gid %d, want 0640 group mailq-drop (%d)", f, st.Mode&0o7777, st.Gid, l.dropG)
		}
	}
	// Not stored means not exit 0: a recipient the maildrop cannot carry.
	if r := l.as(t, nobody, message("bad"), l.sendmail, "-i", "bad recipient"); r.code == 0 {
		t.Errorf("sendmail with a malformed recipient exited 0")
	}
	if got := l.newFiles(t); len(got) != len(users) {
		t.Errorf("a refused message left a file: new/ holds %v", got)
	}
	// Nothing beyond submitting: no listing of new/, no reading another's
	// file (members of mailq-drop could, by a name they guessed: nobody
	// needs to be one, docs/maildrop.md), no queue listing (below).
	for _, u := range users[:2] {
		if r := l.as(t, u.cred, "", "/bin/ls", filepath.Join(l.maildrop, "new")); r.code == 0 {
			t.Errorf("%s listed new/: %q", u.name, r.stdout)
		}
	}
	for _, f := range files {
		path := filepath.Join(l.maildrop, "new", f)
		if ownerOf(t, path) == nobody.Uid {
			continue
		}
		if r := l.as(t, nobody, "", "/bin/sh", "-c", `exec cat -- "$0"`, path); r.code == 0 {
			t.Errorf("nobody read another writer's maildrop file %s", f)
		}
	}
	// A file that is not an envelope, dropped by hand: it will go to failed/.
	bad := l.as(t, nobody, "", "/bin/sh", "-c", `printf 'no blank line ends this\n' >"$0/tmp/junk" && mv "$0/tmp/junk" "$0/new/junk"`, l.maildrop)
	if bad.code != 0 {
		t.Fatalf("dropping a file by hand as nobody: exit %d: %s", bad.code, bad.stderr)
	}

	d := startDaemonCmd(t, userCmd(daemonUser, l.daemon, "--config", l.config))
	d.waitFor(t, "ready", 30*time.Second)
	for _, u := range users {
		waitDelivered(t, sink, "down-"+strconv.Itoa(int(u.cred.Uid))+"@dest.test")
	}

	// Daemon up: the operator goes through the socket, the others (who may
	// not reach it) through the maildrop; all get exit 0.
	for _, u := range users {
		submit(u.name, u.cred, "up-"+strconv.Itoa(int(u.cred.Uid)))
	}
	for _, u := range users {
		waitDelivered(t, sink, "up-"+strconv.Itoa(int(u.cred.Uid))+"@dest.test")
	}
	// Queue powers belong to the socket's group only.
	for _, u := range users[:2] {
		for _, args := range [][]string{{"list"}, {"flush"}, {"delete", "0000000000000001"}} {
			if r := l.as(t, u.cred, "", l.ctl, args...); r.code == 0 {
				t.Errorf("mailqctl %v as %s: exit 0, want a refusal", args, u.name)
			}
		}
		if r := l.as(t, u.cred, "", l.sendmail, "-bp"); r.code == 0 {
			t.Errorf("sendmail -bp as %s: exit 0, want a refusal", u.name)
		}
	}
	// The operator may list, and its sendmail went through the socket.
	r := l.as(t, operator, "", l.ctl, "list", "--status", "done", "--json")
	if r.code != 0 {
		t.Fatalf("mailqctl list as the operator: exit %d\n%s", r.code, r.stderr)
	}
	sources := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m struct {
			Source     string
			Recipients []struct{ Address string }
		}
		must(t, json.Unmarshal([]byte(line), &m))
		for _, rc := range m.Recipients {
			sources[rc.Address] = m.Source
		}
	}
	want := map[string]string{"up-65532@dest.test": "sendmail", "up-65533@dest.test": "maildrop", "up-65534@dest.test": "maildrop"}
	for rcpt, src := range want {
		if sources[rcpt] != src {
			t.Errorf("message to %s came through %q, want %q (all: %v)", rcpt, sources[rcpt], src, sources)
		}
	}

	// Item 2: the operator opens failed/, the refused file and its note.
	failed := filepath.Join(l.maildrop, "failed")
	eventually(t, 10*time.Second, "junk moved to failed/", func() (bool, string) {
		_, err := os.Stat(filepath.Join(failed, "junk.error"))
		return err == nil, fmt.Sprint(dirEntries(failed))
	})
	if r := l.as(t, operator, "", "/bin/ls", failed); r.code != 0 || !strings.Contains(r.stdout, "junk.error") {
		t.Errorf("operator lists failed/: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"junk", "junk.error"} {
		if r := l.as(t, operator, "", "/bin/sh", "-c", `exec cat -- "$0"`, filepath.Join(failed, f)); r.code != 0 || r.stdout == "" {
			t.Errorf("operator reads failed/%s: exit %d %q", f, r.code, r.stderr)
		}
		if r := l.as(t, nobody, "", "/bin/sh", "-c", `exec cat -- "$0"`, filepath.Join(failed, f)); r.code == 0 {
			t.Errorf("nobody read failed/%s", f)
		}
	}
	if left := l.newFiles(t); len(left) != 0 {
		t.Errorf("new/ still holds %v", left)
	}
	d.stop(t)
}

// waitDelivered waits until the sink has one message for rcpt.
func waitDelivered(t *testing.T, sink *opsSink, rcpt string) {
	t.Helper()
	eventually(t, 20*time.Second, "delivery to "+rcpt, func() (bool, string) {
		n := len(sink.messagesTo(rcpt))
		return n == 1, fmt.Sprintf("%d messages", n)
	})
}

func userCmd(cred *syscall.Credential, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/"
	return cmd
}

func ownerOf(t *testing.T, path string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Stat(path, &st))
	return st.Uid
}

// lookupID returns field (2: uid or gid) of name in a passwd or group file.
func lookupID(t *testing.T, file, name string, field int) uint32 {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) > field && parts[0] == name {
			id, err := strconv.ParseUint(parts[field], 10, 32)
			must(t, err)
			return uint32(id)
		}
	}
	t.Fatalf("%s not in %s", name, file)
	return 0
}

func mkdirOwned(t *testing.T, dir string, mode os.FileMode, uid, gid uint32) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
	must(t, os.Mkdir(dir, mode))
	must(t, os.Chmod(dir, mode))
	must(t, os.Chown(dir, int(uid), int(gid)))
}

func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	must(t, err)
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	must(t, out.Close())
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
