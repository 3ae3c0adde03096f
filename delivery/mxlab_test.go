package delivery

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailq/mx/dnstest"
	"mailq/smtpproto"
)

// mxLab is a small Internet on loopback: an in-process DNS server and SMTP
// servers on several loopback addresses (127.0.0.2, 127.0.0.3, ::1, ...)
// sharing one ephemeral port, as mail exchangers share port 25.
type mxLab struct {
	t       *testing.T
	dns     *dnstest.Server
	port    int
	servers map[string]*mxServer // by IP
	caFile  string
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey

	mu    sync.Mutex
	dials []string // every address the engine dialled, in order
}

// mxServer kinds.
const (
	kindAccept    = "accept"     // go-smtp sink, no STARTTLS
	kindTLS       = "tls"        // go-smtp sink with STARTTLS (certificate for certName)
	kindGreet421  = "421"        // greets 421 and hangs up
	kindBrokenTLS = "broken-tls" // offers STARTTLS, answers 220, then sends garbage
	kindRefuse    = "refuse"     // nothing listens: connection refused
)

type mxServer struct {
	ip, kind string
	certName string        // kindTLS: the name its certificate is for
	delay    time.Duration // before accepting each message
	sink     *sink
	ln       net.Listener

	mu      sync.Mutex
	accepts int
	open    int
	maxOpen int
}

func (s *mxServer) stats() (accepts, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts, s.maxOpen
}

func newMXLab(t *testing.T) *mxLab {
	lab := &mxLab{t: t, dns: dnstest.Start(t), servers: map[string]*mxServer{}}
	lab.makeCA()
	return lab
}

// listen starts the servers, all on one port (retrying with a fresh port
// if another test holds it on one of the addresses).
func (lab *mxLab) listen(servers ...*mxServer) {
	t := lab.t
	for try := 0; ; try++ {
		var lns []net.Listener
		port := 0
		ok := true
		for _, s := range servers {
			if s.kind == kindRefuse {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(s.ip, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			if port == 0 {
				port = ln.Addr().(*net.TCPAddr).Port
			}
			lns = append(lns, ln)
			s.ln = ln
		}
		if ok && port != 0 {
			lab.port = port
			break
		}
		for _, ln := range lns {
			ln.Close()
		}
		if try == 30 {
			t.Fatal("no port free on every lab address")
		}
	}
	for _, s := range servers {
		lab.servers[s.ip] = s
		if s.ln != nil {
			go lab.serve(s)
			t.Cleanup(func() { s.ln.Close() })
		}
	}
}

func (lab *mxLab) serve(s *mxServer) {
	var srv *smtp.Server
	if s.kind == kindAccept || s.kind == kindTLS {
		s.sink = &sink{}
		srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
			return &slowSession{sinkSession: sinkSession{s: s.sink, keep: true}, delay: s.delay}, nil
		}))
		srv.Domain = "mx-" + s.ip
		srv.AllowInsecureAuth = true
		if s.kind == kindTLS {
			cert := lab.leaf(s.certName)
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		}
		lab.t.Cleanup(func() { srv.Close() })
	}
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepts++
		s.open++
		s.maxOpen = max(s.maxOpen, s.open)
		s.mu.Unlock()
		c = &countedConn{Conn: c, s: s}
		switch s.kind {
		case kindGreet421:
			go func() { fmt.Fprint(c, "421 4.3.2 too busy, try another MX\r\n"); c.Close() }()
		case kindBrokenTLS:
			go brokenTLS(c)
		default:
			go srv.Serve(&oneConnListener{c: c, addr: s.ln.Addr()})
		}
	}
}

// brokenTLS offers STARTTLS, accepts it, then answers the handshake with
// garbage; in plaintext it accepts every message.
func brokenTLS(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprint(c, "220 broken.test ESMTP\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch verb := line[:min(4, len(line))]; verb {
		case "EHLO":
			fmt.Fprint(c, "250-broken.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
		case "STAR":
			fmt.Fprint(c, "220 2.0.0 go ahead\r\n")
			c.Write([]byte("this is not a TLS server hello\r\n"))
			io.Copy(io.Discard, br)
			return
		case "QUIT":
			fmt.Fprint(c, "221 bye\r\n")
			return
		case "MAIL", "RCPT", "RSET", "NOOP":
			fmt.Fprint(c, "250 2.0.0 ok\r\n")
		case "DATA":
			fmt.Fprint(c, "354 go on\r\n")
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			fmt.Fprint(c, "250 2.0.0 accepted in plaintext\r\n")
		default:
			fmt.Fprint(c, "502 5.5.1 no\r\n")
		}
	}
}

// countedConn keeps its server's count of open connections.
type countedConn struct {
	net.Conn
	s    *mxServer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.s.mu.Lock(); c.s.open--; c.s.mu.Unlock() })
	return c.Conn.Close()
}

// oneConnListener hands go-smtp one accepted connection.
type oneConnListener struct {
	c    net.Conn
	addr net.Addr
	done bool
	mu   sync.Mutex
	wait chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.done {
		l.done = true
		l.wait = make(chan struct{})
		l.mu.Unlock()
		return l.c, nil
	}
	w := l.wait
	l.mu.Unlock()
	<-w
	return nil, net.ErrClosed
}
func (l *oneConnListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wait != nil {
		select {
		case <-l.wait:
		default:
			close(l.wait)
		}
	}
	return nil
}
func (l *oneConnListener) Addr() net.Addr { return l.addr }

type slowSession struct {
	sinkSession
	delay time.Duration
}

func (s *slowSession) Data(r io.Reader) error {
	time.Sleep(s.delay)
	return s.sinkSession.Data(r)
}

// route is an MX route over the lab's DNS and port.
func (lab *mxLab) route(name string, tweak func(*MXRoute)) Route {
	r := Route{
		Settings: smtpproto.Settings{
			Name: name, Domains: []string{"*"}, Port: lab.port, Localhost: "client.test",
			ConnectionTimeout: ptr(2000), Timeout: ptr(2000), WriteTimeout: ptr(2000),
			TLSCAFile: lab.caFile,
		},
		Retry: testRetry(),
		MX:    &MXRoute{Resolver: lab.dns.Addr},
	}
	if tweak != nil {
		tweak(r.MX)
	}
	return r
}

// options wires the engine to the lab: deterministic MX shuffle and a
// dialer that records every address dialled.
func (lab *mxLab) options(o *Options) {
	o.MX.Shuffle = func(int, func(i, j int)) {}
	o.DialOptions.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		lab.mu.Lock()
		lab.dials = append(lab.dials, addr)
		lab.mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func (lab *mxLab) takeDials() []string {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	d := lab.dials
	lab.dials = nil
	return d
}

// checkDials asserts the addresses dialled since the last take, in order.
func (lab *mxLab) checkDials(t *testing.T, ips ...string) {
	t.Helper()
	var want []string
	for _, ip := range ips {
		want = append(want, lab.addr(ip))
	}
	if got := lab.takeDials(); !reflect.DeepEqual(got, want) {
		t.Errorf("dialled %v, want %v", got, want)
	}
}

// addr is "ip:port" as the engine dials it.
func (lab *mxLab) addr(ip string) string { return net.JoinHostPort(ip, fmt.Sprint(lab.port)) }

func (lab *mxLab) makeCA() {
	t := lab.t
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailq test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	lab.ca, _ = x509.ParseCertificate(der)
	lab.caKey = key
	lab.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(lab.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

var serial int64 = 100

// leaf is a certificate for name signed by the lab CA.
func (lab *mxLab) leaf(name string, more ...string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		lab.t.Fatal(err)
	}
	lab.mu.Lock()
	serial++
	sn := serial
	lab.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: name}, DNSNames: append([]string{name}, more...),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, lab.ca, &key.PublicKey, lab.caKey)
	if err != nil {
		lab.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, lab.ca.Raw}, PrivateKey: key}
}
