package smtpproto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testPKI is a CA and leaf certificates generated for one test run.
type testPKI struct {
	caFile                         string
	good, wrongName, expired, self tls.Certificate
	wildcard, cnOnly               tls.Certificate // SAN *.example.com; CN "leaf" without any SAN
	clientCertFile, clientKeyFile  string
	caPool                         *x509.CertPool
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiDir  string
)

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "smtpproto-pki")
		if err != nil {
			t.Fatal(err)
		}
		pkiDir = dir
		pkiVal = buildPKI(t, dir)
	})
	return pkiVal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkiDir != "" {
		os.RemoveAll(pkiDir)
	}
	os.Exit(code)
}

func buildPKI(t *testing.T, dir string) *testPKI {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailq test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	leaf := func(serial int64, dns []string, ips []net.IP, from, to time.Time, client bool, selfSigned bool) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			DNSNames: dns, IPAddresses: ips, NotBefore: from, NotAfter: to,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if client {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		parent, signer := caCert, any(caKey)
		if selfSigned {
			parent, signer = tmpl, k
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	lo := []net.IP{net.ParseIP("127.0.0.1")}
	p.good = leaf(2, []string{"localhost", "mx.test"}, lo, now.Add(-time.Hour), now.Add(time.Hour), false, false)
	p.wrongName = leaf(3, []string{"other.test"}, nil, now.Add(-time.Hour), now.Add(time.Hour), false, false)
	p.expired = leaf(4, []string{"localhost"}, lo, now.Add(-48*time.Hour), now.Add(-24*time.Hour), false, false)
	p.self = leaf(5, []string{"localhost"}, lo, now.Add(-time.Hour), now.Add(time.Hour), false, true)
	p.wildcard = leaf(7, []string{"*.example.com"}, nil, now.Add(-time.Hour), now.Add(time.Hour), false, false)
	p.cnOnly = leaf(8, nil, nil, now.Add(-time.Hour), now.Add(time.Hour), false, false)
	cl := leaf(6, []string{"client.test"}, nil, now.Add(-time.Hour), now.Add(time.Hour), true, false)
	p.clientCertFile, p.clientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	os.WriteFile(p.clientCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cl.Certificate[0]}), 0o600)
	kb, _ := x509.MarshalECPrivateKey(cl.PrivateKey.(*ecdsa.PrivateKey))
	os.WriteFile(p.clientKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return p
}

// startFakeTLS is startFake with a TLS config; implicit does the handshake
// before the greeting.
func startFakeTLS(t *testing.T, cfg *tls.Config, implicit bool, greeting string, script ...step) *fakeServer {
	if implicit {
		script = append([]step{{TLS: true, Reply: greeting}}, script...)
		greeting = ""
	}
	fs := startFake(t, greeting)
	fs.mu.Lock()
	fs.tlsCfg = cfg
	fs.script = script
	fs.mu.Unlock()
	return fs
}

func TestImplicitTLSIdentityAndTrust(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name  string
		cert  tls.Certificate
		set   func(*Settings)
		ok    bool
		srvMx uint16
	}{
		{"good cert from CA", p.good, func(s *Settings) { s.TLSCAFile = p.caFile }, true, 0},
		{"wrong name rejected (checkserveridentity default true)", p.wrongName, func(s *Settings) { s.TLSCAFile = p.caFile }, false, 0},
		{"wrong name accepted with checkserveridentity=false", p.wrongName, func(s *Settings) { s.TLSCAFile = p.caFile; s.SSLCheckServerIdentity = boolp(false) }, true, 0},
		{"expired rejected", p.expired, func(s *Settings) { s.TLSCAFile = p.caFile }, false, 0},
		{"self-signed rejected without trust", p.self, nil, false, 0},
		{"ssl.trust * accepts self-signed with matching SAN", p.self, func(s *Settings) { s.SSLTrust = "*" }, true, 0},
		{"ssl.trust * still checks the name", p.wrongName, func(s *Settings) { s.SSLTrust = "*" }, false, 0},
		{"ssl.trust * with checkserveridentity=false accepts anything", p.wrongName, func(s *Settings) { s.SSLTrust = "*"; s.SSLCheckServerIdentity = boolp(false) }, true, 0},
		{"ssl.trust host list matches the host", p.self, func(s *Settings) { s.SSLTrust = "other.test 127.0.0.1" }, true, 0},
		{"ssl.trust unlisted host keeps normal validation (mailq, unlike JavaMail)", p.good, func(s *Settings) { s.SSLTrust = "other.test"; s.TLSCAFile = p.caFile }, true, 0},
		{"ssl.trust unlisted host with self-signed rejected", p.self, func(s *Settings) { s.SSLTrust = "other.test" }, false, 0},
		{"ssl.protocols TLSv1.3 vs server max 1.2 fails", p.good, func(s *Settings) { s.TLSCAFile = p.caFile; s.SSLProtocols = "TLSv1.3" }, false, tls.VersionTLS12},
		{"ssl.ciphersuites not offered by server fails", p.good, func(s *Settings) {
			s.TLSCAFile = p.caFile
			s.SSLCipherSuites = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
			s.SSLProtocols = "TLSv1.2"
		}, false, tls.VersionTLS12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{Certificates: []tls.Certificate{tc.cert}, MaxVersion: tc.srvMx}
			if tc.srvMx != 0 {
				cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
			}
			script := []step{{Expect: "EHLO client.test", Reply: ehloReply("SIZE")}}
			fs := startFakeTLS(t, cfg, true, "220 fake", script...)
			s := fs.settings()
			s.SSLEnable = true
			if tc.set != nil {
				tc.set(s)
			}
			c, err := dialFake(t, fs, s)
			var te *TLSError
			if tc.ok && err != nil || !tc.ok && !errors.As(err, &te) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if c != nil && !strings.HasPrefix(c.TLSVersion(), "TLS1.") {
				t.Fatalf("TLSVersion = %q", c.TLSVersion())
			}
			// The server side logs the handshake failure: expected here.
			if !tc.ok {
				<-fs.done
			}
			fs.mu.Lock()
			fs.errs = nil
			fs.mu.Unlock()
			fs.finish(c)
		})
	}
}

// TestServerNameRules: the identity check follows Go's verifier
// (RFC 6125): a wildcard covers exactly one left-most label, and the
// subject CN is never consulted (JavaMail accepts a CN-only certificate;
// mailq does not). The route's host is a name, so the dial hook takes the
// connection to the loopback server.
func TestServerNameRules(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name  string
		cert  tls.Certificate
		host  string
		check *bool
		ok    bool
	}{
		{"wildcard covers one label", p.wildcard, "mx.example.com", nil, true},
		{"wildcard does not cover two labels", p.wildcard, "a.b.example.com", nil, false},
		{"wildcard does not cover the bare domain", p.wildcard, "example.com", nil, false},
		{"CN only without SAN rejected (mailq, unlike JavaMail)", p.cnOnly, "leaf", nil, false},
		{"CN only accepted with checkserveridentity=false", p.cnOnly, "leaf", boolp(false), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sni string
			cfg := &tls.Config{Certificates: []tls.Certificate{tc.cert},
				GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni = h.ServerName; return nil, nil }}
			fs := startFakeTLS(t, cfg, true, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
			s := fs.settings()
			s.Host, s.SSLEnable, s.TLSCAFile, s.SSLCheckServerIdentity = tc.host, true, p.caFile, tc.check
			loopback := func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, fs.ln.Addr().String())
			}
			c, err := Dial(t.Context(), s, DialOptions{Dialer: loopback})
			var te *TLSError
			if tc.ok && err != nil || !tc.ok && !errors.As(err, &te) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				<-fs.done // the server side logs the refused handshake: expected
				fs.mu.Lock()
				fs.errs = nil
				fs.mu.Unlock()
			}
			fs.finish(c)
			if sni != tc.host {
				t.Errorf("SNI = %q, want %q", sni, tc.host)
			}
		})
	}
}

func TestImplicitTLSSendsSNIAndClientCert(t *testing.T) {
	p := newPKI(t)
	var sni string
	cfg := &tls.Config{Certificates: []tls.Certificate{p.good}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.caPool,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni = h.ServerName; return nil, nil }}
	fs := startFakeTLS(t, cfg, true, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
	s := fs.settings()
	s.Host, s.SSLEnable, s.TLSCAFile = "localhost", true, p.caFile
	s.TLSCertFile, s.TLSKeyFile = p.clientCertFile, p.clientKeyFile
	c, err := dialFake(t, fs, s)
	if err != nil {
		t.Fatal(err)
	}
	fs.finish(c)
	if sni != "localhost" {
		t.Fatalf("SNI = %q", sni)
	}
}

func TestStartTLS(t *testing.T) {
	p := newPKI(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{p.good}}
	fs := startFakeTLS(t, cfg, false, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("STARTTLS", "PIPELINING")},
		step{Expect: "STARTTLS", Reply: "220 go ahead\n250 injected-before-handshake"},
		step{TLS: true, Expect: "EHLO client.test", Reply: ehloReply("SIZE 100")},
		step{Expect: "NOOP", Reply: "250 ok"})
	s := fs.settings()
	s.StartTLSRequired, s.TLSCAFile = true, p.caFile
	c, err := dialFake(t, fs, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Extensions()["PIPELINING"]; ok || c.TLSVersion() == "" {
		t.Fatalf("capabilities not replaced after TLS: %v (%s)", c.Extensions(), c.TLSVersion())
	}
	if !c.Probe(t.Context()) {
		t.Fatal("probe failed: injected plaintext reply was not discarded")
	}
	fs.finish(c)
}

func TestPostTLSEHLOFailure_MailqFailsUnlikeJavaMail(t *testing.T) {
	p := newPKI(t)
	fs := startFakeTLS(t, &tls.Config{Certificates: []tls.Certificate{p.good}}, false, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("STARTTLS", "AUTH PLAIN")},
		step{Expect: "STARTTLS", Reply: "220 go ahead"},
		step{TLS: true, Expect: "EHLO client.test", Reply: "500 no"})
	s := fs.settings()
	s.StartTLSEnable, s.TLSCAFile = true, p.caFile
	_, err := dialFake(t, fs, s)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Reply == nil || pe.Reply.Code != 500 {
		t.Fatalf("err = %v", err)
	}
	if lines := fs.finish(nil); strings.Contains(strings.Join(lines, "\n"), "HELO") {
		t.Fatalf("HELO sent after TLS: %q", lines)
	}
}

func TestAuth530ThenSTARTTLSAndSameAUTH(t *testing.T) {
	p := newPKI(t)
	line := "AUTH PLAIN " + b64("\x00alice\x00s3cret")
	fs := startFakeTLS(t, &tls.Config{Certificates: []tls.Certificate{p.good}}, false, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("STARTTLS", "AUTH PLAIN")},
		step{Expect: line, Reply: "530 5.7.0 encryption required"},
		step{Expect: "STARTTLS", Reply: "220 go ahead"},
		step{TLS: true, Expect: line, Reply: "235 ok"})
	s := fs.settings()
	s.User, s.Password, s.TLSCAFile = "alice", "s3cret", p.caFile
	c, err := dialFake(t, fs, s)
	if err != nil || !c.Authenticated() {
		t.Fatalf("err = %v", err)
	}
	fs.finish(c)
}
