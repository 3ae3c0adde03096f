package smtpproto

// This file builds the TLS client configuration of a route from
// ssl.trust, ssl.checkserveridentity, ssl.protocols, ssl.ciphersuites,
// tls.ca_file and the client certificate (docs/configuration.md "Every key").

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

var protocolVersions = map[string]uint16{
	"TLSV1": tls.VersionTLS10, "TLSV1.0": tls.VersionTLS10, "TLSV1.1": tls.VersionTLS11,
	"TLSV1.2": tls.VersionTLS12, "TLSV1.3": tls.VersionTLS13,
}

// parseProtocols maps JavaMail's protocol list ("TLSv1.2 TLSv1.3") to a
// minimum and maximum version; 0,0 when unset. Only the range is honoured:
// Go cannot enable a non-contiguous set.
func parseProtocols(v string) (min, max uint16, err error) {
	for _, p := range strings.Fields(v) {
		ver, ok := protocolVersions[strings.ToUpper(p)]
		if !ok {
			return 0, 0, fmt.Errorf("unknown protocol %q (use TLSv1, TLSv1.1, TLSv1.2, TLSv1.3; SSL protocols are not supported)", p)
		}
		if min == 0 || ver < min {
			min = ver
		}
		if ver > max {
			max = ver
		}
	}
	return min, max, nil
}

// parseCipherSuites maps IANA/JSSE suite names to Go's IDs (Go uses the
// IANA names). TLS 1.3 suites are accepted but Go does not let them be
// restricted.
func parseCipherSuites(v string) ([]uint16, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	byName := map[string]uint16{}
	for _, cs := range tls.CipherSuites() {
		byName[cs.Name] = cs.ID
	}
	for _, cs := range tls.InsecureCipherSuites() {
		byName[cs.Name] = cs.ID
	}
	var ids []uint16
	for _, n := range strings.Fields(v) {
		id, ok := byName[strings.ToUpper(n)]
		if !ok {
			return nil, fmt.Errorf("unknown cipher suite %q (use IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func loadClientCert(s *Settings) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
	if err != nil {
		return c, fmt.Errorf("loading client certificate %s / %s: %w", s.TLSCertFile, s.TLSKeyFile, err)
	}
	return c, nil
}

// trustsHost reports whether ssl.trust disables chain validation for host:
// "*" for every host, else a case-insensitive match in the space-separated
// list (mailq: unlisted hosts keep normal validation, unlike JavaMail).
func (s *Settings) trustsHost(host string) bool {
	for _, t := range strings.Fields(s.SSLTrust) {
		if t == "*" || strings.EqualFold(t, host) {
			return true
		}
	}
	return false
}

// tlsConfig builds the client configuration for host (also the SNI name).
func (s *Settings) tlsConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host}
	var err error
	if cfg.MinVersion, cfg.MaxVersion, err = parseProtocols(s.SSLProtocols); err != nil {
		return nil, err
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.CipherSuites, err = parseCipherSuites(s.SSLCipherSuites); err != nil {
		return nil, err
	}
	if s.TLSCAFile != "" {
		if cfg.RootCAs, err = loadCAPool(s.TLSCAFile); err != nil {
			return nil, err
		}
	}
	if s.TLSCertFile != "" {
		cert, err := loadClientCert(s)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	checkName := s.SSLCheckServerIdentity == nil || *s.SSLCheckServerIdentity
	trusted := s.trustsHost(host)
	if checkName && !trusted {
		return cfg, nil // Go's default: chain and name (subjectAltName only)
	}
	// Verification is done by hand: skip what the settings waive.
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		if !trusted {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return err
			}
		}
		if checkName {
			return leaf.VerifyHostname(host)
		}
		return nil
	}
	return cfg, nil
}
