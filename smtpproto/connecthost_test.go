package smtpproto

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// TestConnectHostKeepsTheNameForTLS: with DialOptions.ConnectHost (an MX
// address), the socket goes to that address while the certificate is
// still checked against, and SNI still names, Settings.Host.
func TestConnectHostKeepsTheNameForTLS(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name string
		host string
		ok   bool
	}{
		{"certificate names the host", "mx.test", true},
		{"certificate does not name the host", "mx.other.test", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sni string
			cfg := &tls.Config{Certificates: []tls.Certificate{p.good},
				GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni = h.ServerName; return nil, nil }}
			fs := startFakeTLS(t, cfg, true, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
			s := fs.settings()
			s.Host, s.SSLEnable, s.TLSCAFile = tc.host, true, p.caFile
			c, err := Dial(t.Context(), s, DialOptions{ConnectHost: "127.0.0.1"})
			var te *TLSError
			if tc.ok && err != nil || !tc.ok && !errors.As(err, &te) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if c != nil {
				if !strings.HasPrefix(c.RemoteAddr(), "127.0.0.1:") || c.TLSCipher() == "" {
					t.Errorf("RemoteAddr %q, TLSCipher %q", c.RemoteAddr(), c.TLSCipher())
				}
			} else {
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
