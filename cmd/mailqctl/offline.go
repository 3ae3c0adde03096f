package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"mailq/control"
)

// daemonPath is where `make install` puts the daemon; the Makefile sets it
// with -ldflags "-X main.daemonPath=$(LIBEXECDIR)/mailq".
var daemonPath = "/usr/local/libexec/mailq/mailq"

// readClient is the client for the commands that only read (list, show,
// cat, stats, summary). When the daemon does not answer on its socket
// because it is not running, they read the queue file read-only through
// `mailq read-queue` (the daemon's binary, which links the store; mailqctl
// does not) and say so on standard error. done ends that process.
func (a *app) readClient(ctx context.Context) (c *control.Client, done func(), err error) {
	c, err = a.client()
	if err != nil {
		return nil, nil, err
	}
	pingErr := c.Ping(ctx)
	if pingErr == nil || !errors.Is(pingErr, control.ErrUnreachable) ||
		errors.Is(pingErr, syscall.EACCES) || errors.Is(pingErr, syscall.EPERM) {
		// Up, or refused for a reason the queue file would not fix.
		return c, func() {}, nil
	}
	if c, cerr := a.clientSettings(); cerr == nil && c.Postgres {
		// No local file to fall back on: the queue is in the database, and
		// every node's socket answers for all of it.
		return nil, nil, fmt.Errorf("%w; the queue is in PostgreSQL ([queue] backend = \"postgres\"): ask a running node (--socket), or start this one", pingErr)
	}
	daemon, err := daemonBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("%w; and the queue file cannot be read without the daemon: %v", pingErr, err)
	}
	args := []string{"read-queue"}
	if a.configPath != "" {
		args = append(args, "--config", a.configPath)
	}
	cmd := exec.CommandContext(ctx, daemon, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%w; and running %s to read the queue file failed: %v", pingErr, daemon, err)
	}
	br := bufio.NewReader(stdout)
	line, rerr := br.ReadString('\n')
	path, ready := strings.CutPrefix(strings.TrimSpace(line), control.ReadQueueReady+" ")
	if rerr != nil || !ready {
		stdin.Close()
		werr := cmd.Wait()
		reason := strings.TrimSpace(stderr.String())
		if reason == "" {
			reason = fmt.Sprintf("%s read-queue ended without reading the queue file (%v)", daemon, werr)
		}
		return nil, nil, fmt.Errorf("%w; %s", pingErr, reason)
	}
	fmt.Fprintf(a.stderr, "mailqctl: mailq is not running; reading the queue file %s read-only (the queue as the daemon left it)\n", path)
	conn := control.PipeConn(readCloser{br, stdout}, stdin)
	return control.NewConnClient("the queue file "+path+" (read-only)", conn), func() {
		conn.Close()
		cmd.Wait()
	}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// daemonBinary finds the daemon: $MAILQ_DAEMON, else "mailq" beside this
// binary when that is another program (a build tree; installed, that name
// is mailqctl's own link), else the installed daemonPath.
func daemonBinary() (string, error) {
	if p := os.Getenv("MAILQ_DAEMON"); p != "" {
		return p, nil
	}
	var tried []string
	if self, err := os.Executable(); err == nil {
		sibling := filepath.Join(filepath.Dir(self), "mailq")
		si, serr := os.Stat(sibling)
		me, merr := os.Stat(self)
		if serr == nil && merr == nil && si.Mode().IsRegular() && !os.SameFile(si, me) {
			return sibling, nil
		}
		tried = append(tried, sibling)
	}
	if _, err := os.Stat(daemonPath); err == nil {
		return daemonPath, nil
	}
	tried = append(tried, daemonPath)
	return "", fmt.Errorf("no mailq daemon binary at %s (set MAILQ_DAEMON to its path)", strings.Join(tried, " or "))
}
