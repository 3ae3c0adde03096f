package smtpproto

// Integration tests against third-party programs from Debian (installed by
// .ci/install-peers): aiosmtpd as the server, microsocks as
// SOCKS5 proxy, tinyproxy as HTTP CONNECT proxy. All on loopback.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const aiosmtpdScript = `
import sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, out = int(sys.argv[1]), sys.argv[2]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write("FROM=%s TO=%s AUTH=%s\n" % (envelope.mail_from, ",".join(envelope.rcpt_tos), bool(session.authenticated)))
            f.write(envelope.original_content.decode("utf-8", "replace"))
            f.write("--END--\n")
        return "250 2.0.0 stored"
def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alice" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)
c = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False)
c.start()
print("READY", flush=True)
sys.stdin.read()
c.stop()
`

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProgram runs a peer program and stops it (by its own PID) at cleanup.
func startProgram(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on 127.0.0.1:%d after 10s", port)
}

func needProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("install %s (see .ci/run): %v", name, err)
	}
	return p
}

// startAiosmtpd returns the port and the file the server appends messages to.
func startAiosmtpd(t *testing.T) (int, string) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import aiosmtpd").Run(); err != nil {
		t.Fatalf("install python3-aiosmtpd (see .ci/run): %v", err)
	}
	dir := t.TempDir()
	script, out := filepath.Join(dir, "server.py"), filepath.Join(dir, "messages.txt")
	if err := os.WriteFile(script, []byte(aiosmtpdScript), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(py, script, strconv.Itoa(port), out)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	startProgram(t, cmd)
	t.Cleanup(func() { stdin.Close() })
	ready := make(chan error, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(l) != "READY" {
			err = fmt.Errorf("unexpected output %q", l)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("aiosmtpd did not start: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("aiosmtpd did not start within 20s")
	}
	return port, out
}

func TestPeerAiosmtpd(t *testing.T) {
	port, out := startAiosmtpd(t)
	cases := []struct {
		name    string
		mechs   string
		pass    string
		wantErr bool
	}{
		{"AUTH PLAIN", "PLAIN", "s3cret", false},
		{"AUTH LOGIN", "LOGIN", "s3cret", false},
		{"wrong password is an AuthError", "PLAIN", "wrong", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Settings{Name: "aiosmtpd", Host: "127.0.0.1", Port: port, Localhost: "client.test",
				User: "alice", Password: tc.pass, AuthMechanisms: tc.mechs, Auth: boolp(true)}
			c, err := Dial(context.Background(), s, DialOptions{})
			if tc.wantErr {
				var ae *AuthError
				if !errors.As(err, &ae) || ae.Reply == nil || ae.Reply.Code != 535 {
					t.Fatalf("err = %v, want AuthError with 535", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < 2; i++ {
				subject := fmt.Sprintf("%s-%d", tc.mechs, i)
				res, err := c.Send(context.Background(), env1("sender@x.test", "rcpt@y.test"), strings.NewReader("Subject: "+subject+"\n\n.dot line\n"))
				if err != nil || !res.Recipients[0].Delivered || res.Recipients[0].Final.Enhanced != "2.0.0" {
					t.Fatalf("send %d: err = %v, res = %+v", i, err, res.Recipients[0])
				}
				if err := c.Reset(); err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(out)
				if !strings.Contains(string(got), "Subject: "+subject+"\r\n\r\n.dot line\r\n") || !strings.Contains(string(got), "AUTH=True") {
					t.Fatalf("server stored:\n%s", got)
				}
			}
		})
	}
}

func TestPeerProxies(t *testing.T) {
	port, out := startAiosmtpd(t)
	cases := []struct {
		name  string
		start func(t *testing.T) func(*Settings)
	}{
		{"microsocks SOCKS5", func(t *testing.T) func(*Settings) {
			bin := needProgram(t, "microsocks")
			p := freePort(t)
			startProgram(t, exec.Command(bin, "-i", "127.0.0.1", "-p", strconv.Itoa(p)))
			waitListening(t, p)
			return func(s *Settings) { s.SocksHost, s.SocksPort = "127.0.0.1", p }
		}},
		{"tinyproxy HTTP CONNECT", func(t *testing.T) func(*Settings) {
			bin := needProgram(t, "tinyproxy")
			p := freePort(t)
			conf := filepath.Join(t.TempDir(), "tinyproxy.conf")
			os.WriteFile(conf, []byte(fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 60\nMaxClients 10\nAllow 127.0.0.1\n", p)), 0o600)
			cmd := exec.Command(bin, "-d", "-c", conf)
			startProgram(t, cmd)
			waitListening(t, p)
			return func(s *Settings) { s.ProxyHost = "127.0.0.1:" + strconv.Itoa(p) }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Settings{Name: "viaproxy", Host: "127.0.0.1", Port: port, Localhost: "client.test"}
			tc.start(t)(s)
			c, err := Dial(context.Background(), s, DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			subject := strings.ReplaceAll(tc.name, " ", "-")
			res, err := c.Send(context.Background(), env1("sender@x.test", "rcpt@y.test"), strings.NewReader("Subject: "+subject+"\n\nhi\n"))
			if err != nil || !res.Recipients[0].Delivered {
				t.Fatalf("err = %v", err)
			}
			got, _ := os.ReadFile(out)
			if !strings.Contains(string(got), "Subject: "+subject) {
				t.Fatalf("server stored:\n%s", got)
			}
		})
	}
}
