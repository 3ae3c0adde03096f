package smtpproto

// This file is the start-up validation of a route (docs/configuration.md "Every key"):
// impossible combinations and values that could never work stop the daemon
// with an error naming the route and the key.

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// knownMechanisms are the AUTH mechanisms mailq implements.
var knownMechanisms = map[string]bool{
	"LOGIN": true, "PLAIN": true, "DIGEST-MD5": true, "CRAM-MD5": true,
	"NTLM": true, "XOAUTH2": true, "SCRAM-SHA-256": true,
}

// Validate checks the route for errors an operator must fix before mailq
// starts. It reads no secrets; it does check that TLS files load.
func (s *Settings) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("route %q: key %q: %s", s.routeName(), key, fmt.Sprintf(format, args...)))
	}
	portKey := func(key string, v int, zeroOK bool) {
		if v == 0 && zeroOK {
			return
		}
		if v < 1 || v > 65535 {
			bad(key, "port %d is outside 1–65535", v)
		}
	}
	portKey("port", s.Port, true)
	portKey("socks.port", s.SocksPort, true)
	portKey("proxy.port", s.ProxyPort, true)
	portKey("socketFactory.port", s.SocketFactoryPort, true)
	portKey("ssl.socketFactory.port", s.SSLSocketFactoryPort, true)
	if s.LocalPort < 0 || s.LocalPort > 65535 {
		bad("localport", "port %d is outside 0–65535", s.LocalPort)
	}
	for key, p := range map[string]*int{"connectiontimeout": s.ConnectionTimeout, "timeout": s.Timeout, "writetimeout": s.WriteTimeout} {
		if p != nil && *p <= 0 {
			bad(key, "%d ms: mailq never waits forever; give a positive number of milliseconds or remove the key for the default", *p)
		}
	}
	if s.SSLEnable && s.StartTLSRequired {
		bad("starttls.required", "cannot be combined with \"ssl.enable\" (implicit TLS); keep one of them")
	}
	if s.RequiresAuth() && !hasPasswordSource(s) {
		bad("auth", "auth = true needs a password source: set password_file, password_env or oauth2.token_file")
	}
	sources := 0
	for _, v := range []string{s.Password, s.PasswordFile, s.PasswordEnv} {
		if v != "" {
			sources++
		}
	}
	if sources > 1 {
		bad("password_file", "set only one of password, password_file, password_env")
	}
	// A file under $CREDENTIALS_DIRECTORY exists only in the daemon's unit;
	// CheckCredentials (mailq --check-config, daemon start) reads it there.
	if s.PasswordFile != "" && !strings.Contains(s.PasswordFile, "$"+credentialsDirVar) && !strings.Contains(s.PasswordFile, "${"+credentialsDirVar+"}") {
		if _, err := os.Stat(s.PasswordFile); err != nil {
			bad("password_file", "%v", err)
		}
	}
	if s.ProxyUser != "" && s.ProxyPassword == "" || s.ProxyUser == "" && s.ProxyPassword != "" {
		bad("proxy.user", "proxy.user and proxy.password must be set together")
	}
	for key, v := range map[string]string{
		"socketFactory":           s.SocketFactory,
		"socketFactory.class":     s.SocketFactoryClass,
		"ssl.socketFactory":       s.SSLSocketFactory,
		"ssl.socketFactory.class": s.SSLSocketFactoryClass,
	} {
		if v == "" {
			continue
		}
		if strings.HasPrefix(key, "ssl.") {
			bad(key, "Java socket factory classes do not exist in mailq; use \"tls.ca_file\", \"tls.cert_file\", \"tls.key_file\" and \"ssl.trust\" instead")
		} else {
			bad(key, "Java socket factory classes do not exist in mailq; use \"proxy.host\"/\"proxy.port\", \"socks.host\"/\"socks.port\" and \"socketFactory.fallback\" instead")
		}
	}
	for key, v := range map[string]string{
		"mailextension": s.MailExtension, "submitter": s.Submitter, "localhost": s.Localhost,
		"user": s.User, "from": s.From, "dsn.notify": s.DSNNotify, "dsn.ret": s.DSNRet,
		"host": s.Host, "sasl.authorizationid": s.SASLAuthzID, "sasl.realm": s.SASLRealm,
	} {
		if strings.ContainsAny(v, "\r\n\x00") {
			bad(key, "contains CR, LF or NUL, which would inject SMTP commands")
		}
	}
	if s.DSNNotify != "" {
		if err := checkNotify(s.DSNNotify); err != nil {
			bad("dsn.notify", "%v", err)
		}
	}
	if r := strings.ToUpper(s.DSNRet); r != "" && r != "FULL" && r != "HDRS" {
		bad("dsn.ret", "%q is not FULL or HDRS", s.DSNRet)
	}
	for _, key := range []string{"auth.mechanisms", "sasl.mechanisms"} {
		v := s.AuthMechanisms
		if key == "sasl.mechanisms" {
			v = s.SASLMechanisms
		}
		for _, m := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
			if !knownMechanisms[strings.ToUpper(m)] {
				bad(key, "unknown mechanism %q (mailq knows LOGIN, PLAIN, DIGEST-MD5, CRAM-MD5, NTLM, XOAUTH2, SCRAM-SHA-256)", m)
			}
		}
	}
	if _, _, err := parseProtocols(s.SSLProtocols); err != nil {
		bad("ssl.protocols", "%v", err)
	}
	if _, err := parseCipherSuites(s.SSLCipherSuites); err != nil {
		bad("ssl.ciphersuites", "%v", err)
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		bad("tls.cert_file", "tls.cert_file and tls.key_file must be set together")
	} else if s.TLSCertFile != "" {
		if _, err := loadClientCert(s); err != nil {
			bad("tls.cert_file", "%v", err)
		}
	}
	if s.TLSCAFile != "" {
		if _, err := loadCAPool(s.TLSCAFile); err != nil {
			bad("tls.ca_file", "%v", err)
		}
	}
	if s.ChunkSize < 0 {
		bad("chunksize", "%d is negative; use 0 (or remove the key) to send with DATA", s.ChunkSize)
	}
	return errors.Join(errs...)
}

func (s *Settings) routeName() string {
	if s.Name == "" {
		return "(unnamed)"
	}
	return s.Name
}

// checkNotify accepts NEVER or a comma list of SUCCESS, FAILURE, DELAY
// (RFC 3461 §4.1).
func checkNotify(v string) error {
	parts := strings.Split(strings.ToUpper(v), ",")
	for _, p := range parts {
		switch p {
		case "SUCCESS", "FAILURE", "DELAY":
		case "NEVER":
			if len(parts) > 1 {
				return fmt.Errorf("%q: NEVER cannot be combined with other values", v)
			}
		default:
			return fmt.Errorf("%q: %q is not NEVER, SUCCESS, FAILURE or DELAY", v, p)
		}
	}
	return nil
}
