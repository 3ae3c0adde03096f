package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// postfixInst is a private Postfix instance: its own config_directory,
// queue_directory, data_directory and log under dir, its smtpd on a free
// loopback port, relayhost the port given to start. Nothing of the
// machine's Postfix is used but the programs and the stock master.cf.
type postfixInst struct {
	dir, etc, spool string
	port            int
	master          int // pid of master while running
}

func newPostfix(dir string) (*postfixInst, error) {
	p := &postfixInst{dir: dir, etc: filepath.Join(dir, "etc"), spool: filepath.Join(dir, "spool")}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = port
	data := filepath.Join(dir, "data")
	for _, d := range []string{p.etc, p.spool, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if out, err := exec.Command("cp", "-a", "/etc/postfix/.", p.etc+"/").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy /etc/postfix: %v: %s", err, out)
	}
	os.Remove(filepath.Join(p.etc, "makedefs.out")) // a symlink out of the directory; postfix check warns
	os.Remove(filepath.Join(p.etc, "main.cf"))
	if err := os.WriteFile(filepath.Join(p.etc, "main.cf"), nil, 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command("chown", "postfix:", data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown %s: %v: %s", data, err, out)
	}
	os.Chmod(data, 0o700)
	if err := p.postconf("-e",
		"compatibility_level = 3.6",
		"config_directory = "+p.etc,
		"queue_directory = "+p.spool,
		"data_directory = "+data,
		"maillog_file = "+filepath.Join(dir, "maillog"),
		"myhostname = postfix-bench.localdomain",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mydestination =",
		"mynetworks = 127.0.0.0/8",
		"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
		"alias_maps =",
		"alias_database =",
		"smtp_tls_security_level = none",
		"smtpd_tls_security_level = none"); err != nil {
		return nil, err
	}
	// Nothing populates a chroot here; the smtpd listens on our port, not 25.
	if err := p.postconf("-F", "*/*/chroot = n"); err != nil {
		return nil, err
	}
	if err := p.postconf("-MX", "smtp/inet"); err != nil {
		return nil, err
	}
	svc := fmt.Sprintf("127.0.0.1:%d/inet", port)
	if err := p.postconf("-M", fmt.Sprintf("%s = 127.0.0.1:%d inet n - n - - smtpd", svc, port)); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *postfixInst) name() string { return "postfix" }

func (p *postfixInst) postconf(args ...string) error {
	out, err := exec.Command("postconf", append([]string{"-c", p.etc}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("postconf %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// start runs `postfix start` relaying everything to 127.0.0.1:relayPort and
// returns once its smtpd accepts connections.
func (p *postfixInst) start(relayPort int) error {
	if err := p.postconf("-e", fmt.Sprintf("relayhost = [127.0.0.1]:%d", relayPort)); err != nil {
		return err
	}
	out, err := exec.Command("postfix", "-c", p.etc, "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix start: %v: %s (log: %s/maillog)", err, out, p.dir)
	}
	b, err := os.ReadFile(filepath.Join(p.spool, "pid", "master.pid"))
	if err != nil {
		return fmt.Errorf("postfix started without a master.pid: %w", err)
	}
	p.master, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	return waitListening(p.port, 15*time.Second)
}

// stop runs `postfix stop` and waits until master (the PID it wrote) is gone.
func (p *postfixInst) stop() {
	if p.master == 0 {
		return
	}
	exec.Command("postfix", "-c", p.etc, "stop").Run()
	if !waitGone(p.master, 20*time.Second) {
		killTree(p.master)
	}
	p.master = 0
}

// pids is master and every process under it (Postfix's daemons).
func (p *postfixInst) pids() []int {
	if p.master == 0 {
		return nil
	}
	return descendants(p.master)
}

// flush asks qmgr to retry everything now (postqueue -f).
func (p *postfixInst) flush() error {
	out, err := exec.Command("postqueue", "-c", p.etc, "-f").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postqueue -f: %v: %s", err, out)
	}
	return nil
}

// sendmailCmd is Postfix's sendmail for this instance (-C: its config).
func (p *postfixInst) sendmailCmd(args ...string) *exec.Cmd {
	return exec.Command("/usr/sbin/sendmail", append([]string{"-C", p.etc}, args...)...)
}

func (p *postfixInst) smtpPort() int { return p.port }
