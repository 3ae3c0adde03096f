package submission

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"mailq/queue"
	"mailq/queue/boltstore"
)

type rig struct {
	l      *Listener
	store  queue.Store
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startListener opens a store and serves a listener on 127.0.0.1:0 until
// the test ends.
func startListener(t testing.TB, tweak func(*Options)) *rig {
	t.Helper()
	return startListenerIn(t, t.TempDir(), tweak)
}

// startListenerIn is startListener with the queue file in dir.
func startListenerIn(t testing.TB, dir string, tweak func(*Options)) *rig {
	t.Helper()
	return startListenerStore(t, dir, queue.Options{}, tweak)
}

// startListenerStore is startListenerIn with the queue's options.
func startListenerStore(t testing.TB, dir string, qopts queue.Options, tweak func(*Options)) *rig {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(dir, "queue.db"), qopts)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Listen: "127.0.0.1:0", Hostname: "mx.test", Store: st, Logger: zerolog.New(io.Discard),
		MaxMessageSize: 1 << 20, Timeout: 30 * time.Second}
	if tweak != nil {
		tweak(&opts)
	}
	l, err := New(opts)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{l: l, store: st, addr: l.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- l.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
		st.Close()
	})
	return r
}

// stored returns a message and its body without our Received: line.
func (r *rig) stored(t testing.TB, id queue.ID) (*queue.Message, string) {
	t.Helper()
	m, err := r.store.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	rc, err := r.store.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return m, stripReceived(t, string(b))
}

// stripReceived checks that the body starts with exactly one Received:
// field (folded lines) and returns the rest.
func stripReceived(t testing.TB, body string) string {
	t.Helper()
	if !strings.HasPrefix(body, "Received: from ") {
		t.Fatalf("stored body does not start with Received: %q", body[:min(len(body), 80)])
	}
	i := strings.Index(body, "\r\n")
	for i >= 0 && i+2 < len(body) && (body[i+2] == '\t' || body[i+2] == ' ') {
		j := strings.Index(body[i+2:], "\r\n")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return body[i+2:]
}

var idPattern = "queued as "

func idFromReply(t testing.TB, text string) queue.ID {
	t.Helper()
	i := strings.Index(text, idPattern)
	if i < 0 {
		t.Fatalf("reply %q has no queue id", text)
	}
	return queue.ID(strings.TrimSpace(text[i+len(idPattern):]))
}

// selfSignedTLS returns a server config with a fresh certificate for
// 127.0.0.1 and a client config that trusts it.
func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"mx.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// writeAuthFile writes users "alice" (bcrypt, password "wonderland") and
// "bob" (argon2id, password "builder").
func writeAuthFile(t testing.TB) string {
	t.Helper()
	bc, err := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	h := argon2.IDKey([]byte("builder"), salt, 1, 8*1024, 1, 32)
	ar := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", 8*1024, 1, 1,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(h))
	path := filepath.Join(t.TempDir(), "auth")
	content := "# test users\nalice:" + string(bc) + "\n\nbob:" + ar + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawConn is a line-level SMTP conversation for what go-smtp's client does
// not do (BDAT, pipelining, odd input).
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.expect("220")
	return rc
}

func (rc *rawConn) send(s string) {
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply and returns its lines joined.
func (rc *rawConn) reply() string {
	var lines []string
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("reading reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (rc *rawConn) expect(prefix string) string {
	rc.t.Helper()
	r := rc.reply()
	if !strings.HasPrefix(r, prefix) {
		rc.t.Fatalf("reply %q, want %s", r, prefix)
	}
	return r
}
