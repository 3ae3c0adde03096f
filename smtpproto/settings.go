package smtpproto

import (
	"net"
	"os"
	"strings"
	"time"
)

// Settings is one route: where mail for some domains goes and how to talk
// to it. Keys are the JavaMail property names without "mail.smtp."
// (docs/configuration.md "Every key"). Pointers distinguish "unset" from the zero value
// where JavaMail's default depends on other keys.
type Settings struct {
	Name    string   `toml:"name"`
	Domains []string `toml:"domains"`

	Host         string `toml:"host"`
	Port         int    `toml:"port"`
	User         string `toml:"user"`
	From         string `toml:"from"`
	Localhost    string `toml:"localhost"`
	LocalAddress string `toml:"localaddress"`
	LocalPort    int    `toml:"localport"`

	ConnectionTimeout *int `toml:"connectiontimeout"` // ms
	Timeout           *int `toml:"timeout"`           // ms
	WriteTimeout      *int `toml:"writetimeout"`      // ms

	EHLO                *bool `toml:"ehlo"`
	QuitWait            *bool `toml:"quitwait"`
	QuitOnSessionReject bool  `toml:"quitonsessionreject"`
	UseRset             bool  `toml:"userset"`
	NoopStrict          *bool `toml:"noop.strict"`

	Auth               *bool  `toml:"auth"`
	Password           string `toml:"password"`
	PasswordFile       string `toml:"password_file"`
	PasswordEnv        string `toml:"password_env"`
	OAuth2TokenFile    string `toml:"oauth2.token_file"`
	AuthMechanisms     string `toml:"auth.mechanisms"`
	AuthLoginDisable   bool   `toml:"auth.login.disable"`
	AuthPlainDisable   bool   `toml:"auth.plain.disable"`
	AuthDigestDisable  bool   `toml:"auth.digest-md5.disable"`
	AuthNTLMDisable    bool   `toml:"auth.ntlm.disable"`
	AuthXOAuth2Disable *bool  `toml:"auth.xoauth2.disable"`
	NTLMDomain         string `toml:"auth.ntlm.domain"`
	NTLMFlags          int    `toml:"auth.ntlm.flags"`
	NTLMv2             *bool  `toml:"auth.ntlm.v2"`
	SASLEnable         bool   `toml:"sasl.enable"`
	SASLMechanisms     string `toml:"sasl.mechanisms"`
	SASLAuthzID        string `toml:"sasl.authorizationid"`
	SASLRealm          string `toml:"sasl.realm"`
	Submitter          string `toml:"submitter"`

	DSNNotify     string `toml:"dsn.notify"`
	DSNRet        string `toml:"dsn.ret"`
	MailExtension string `toml:"mailextension"`
	SendPartial   bool   `toml:"sendpartial"`
	ReportSuccess bool   `toml:"reportsuccess"`
	Allow8BitMIME bool   `toml:"allow8bitmime"`
	AllowUTF8     *bool  `toml:"allowutf8"` // nil = true (mailq); see AllowsUTF8
	ChunkSize     int    `toml:"chunksize"`

	SocksHost     string `toml:"socks.host"`
	SocksPort     int    `toml:"socks.port"`
	ProxyHost     string `toml:"proxy.host"`
	ProxyPort     int    `toml:"proxy.port"`
	ProxyUser     string `toml:"proxy.user"`
	ProxyPassword string `toml:"proxy.password"`

	SSLEnable              bool   `toml:"ssl.enable"`
	StartTLSEnable         bool   `toml:"starttls.enable"`
	StartTLSRequired       bool   `toml:"starttls.required"`
	SSLCheckServerIdentity *bool  `toml:"ssl.checkserveridentity"`
	SSLTrust               string `toml:"ssl.trust"`
	SSLProtocols           string `toml:"ssl.protocols"`
	SSLCipherSuites        string `toml:"ssl.ciphersuites"`
	TLSCAFile              string `toml:"tls.ca_file"`
	TLSCertFile            string `toml:"tls.cert_file"`
	TLSKeyFile             string `toml:"tls.key_file"`

	SocketFactoryPort     int    `toml:"socketFactory.port"`
	SSLSocketFactoryPort  int    `toml:"ssl.socketFactory.port"`
	SocketFactoryFallback bool   `toml:"socketFactory.fallback"`
	SocketFactory         string `toml:"socketFactory"`
	SocketFactoryClass    string `toml:"socketFactory.class"`
	SSLSocketFactory      string `toml:"ssl.socketFactory"`
	SSLSocketFactoryClass string `toml:"ssl.socketFactory.class"`

	// Retry is the route's [route.retry] table; config merges it over [retry].
	// smtpproto ignores it. Keys as in the global [retry] table.
	Retry map[string]any `toml:"retry"`
}

// Endpoint returns the host and port to connect to with mailq's defaults:
// host "localhost", port 25, or 465 with ssl.enable (docs/javamail.md
// §1.1).
func (s *Settings) Endpoint() (host string, port int) {
	host, port = s.Host, s.Port
	if host == "" {
		host = "localhost"
	}
	if port == 0 {
		port = 25
		if s.SSLEnable {
			port = 465
		}
	}
	return host, port
}

// Timeouts returns the connect, read and write timeouts. mailq never waits
// forever: unset keys take 30 s / 300 s / 300 s (docs/configuration.md "Every key").
func (s *Settings) Timeouts() (connect, read, write time.Duration) {
	ms := func(p *int, def time.Duration) time.Duration {
		if p == nil || *p <= 0 {
			return def
		}
		return time.Duration(*p) * time.Millisecond
	}
	return ms(s.ConnectionTimeout, DefaultConnectTimeout), ms(s.Timeout, DefaultTimeout), ms(s.WriteTimeout, DefaultWriteTimeout)
}

// Effective returns the settings with every key that has a default but is
// unset filled with the value that applies (host, port, timeouts in ms,
// and the booleans whose default depends on nothing), so --check-config
// can print every key. The result behaves exactly like s.
func (s Settings) Effective() Settings {
	t := true
	yes := func(p **bool, v bool) {
		if *p == nil {
			b := v
			*p = &b
		}
	}
	ms := func(p **int, d time.Duration) {
		if *p == nil || **p <= 0 {
			v := int(d / time.Millisecond)
			*p = &v
		}
	}
	s.Host, s.Port = s.Endpoint()
	connect, read, write := s.Timeouts()
	ms(&s.ConnectionTimeout, connect)
	ms(&s.Timeout, read)
	ms(&s.WriteTimeout, write)
	yes(&s.EHLO, t)
	yes(&s.QuitWait, t)
	yes(&s.NoopStrict, t)
	yes(&s.SSLCheckServerIdentity, t)
	yes(&s.AllowUTF8, t)
	yes(&s.NTLMv2, t)
	// Unset, XOAUTH2 is off unless the operator's list names it.
	yes(&s.AuthXOAuth2Disable, !namesMechanism(&s, mechXOAUTH2))
	// Unset, auth behaves as false: authenticate when a password source
	// is set, and never require it.
	yes(&s.Auth, false)
	return s
}

// AllowsUTF8 reports the allowutf8 key (mail.mime.allowutf8). mailq's
// default is true, unlike JavaMail's false: intake already accepted the
// message, and SMTPUTF8 (RFC 6531) is sent only for a message whose
// envelope or headers need it, so true changes nothing for ASCII mail.
// false forbids SMTPUTF8 on the route: such a message fails permanently
// (5.6.7) without being offered, as JavaMail without allowutf8 would never
// send UTF-8 either (and mailq never rewrites a message to ASCII).
func (s *Settings) AllowsUTF8() bool { return s.AllowUTF8 == nil || *s.AllowUTF8 }

// UseEHLO reports the ehlo key (default true).
func (s *Settings) UseEHLO() bool { return s.EHLO == nil || *s.EHLO }

// WantsAuth reports whether the session authenticates when the server
// offers AUTH: auth = true, or auth unset/false with a password source
// (docs/configuration.md "Every key"; JavaMail §2.7 also authenticates with auth=false
// when credentials exist, and mailq keeps that).
func (s *Settings) WantsAuth() bool {
	return (s.Auth != nil && *s.Auth) || hasPasswordSource(s)
}

// RequiresAuth reports auth = true: a server without AUTH is then a
// temporary failure, never an unauthenticated send.
func (s *Settings) RequiresAuth() bool { return s.Auth != nil && *s.Auth }

// EHLOName returns the name for EHLO/HELO (RFC 5321 §4.1.1.1): the
// route's localhost if set, else hostname (mailq's configured hostname,
// DialOptions.Hostname) when it is a domain with a dot, else the machine's
// name when it has a dot, else an address literal of the local end of the
// connection ("[192.0.2.1]" / "[IPv6:2001:db8::1]", RFC 5321 §4.1.3),
// never a bare IP.
func (s *Settings) EHLOName(hostname string, local net.Addr) string {
	if s.Localhost != "" {
		return s.Localhost
	}
	if isFQDN(hostname) {
		return hostname
	}
	if h, err := os.Hostname(); err == nil && isFQDN(h) {
		return h
	}
	var ip net.IP
	if ta, ok := local.(*net.TCPAddr); ok {
		ip = ta.IP
	} else if local != nil {
		if h, _, err := net.SplitHostPort(local.String()); err == nil {
			ip = net.ParseIP(h)
		}
	}
	return addressLiteral(ip)
}

// isFQDN: a name with a dot that is not an IP address.
func isFQDN(h string) bool {
	return strings.Contains(strings.Trim(h, "."), ".") && net.ParseIP(h) == nil
}

// addressLiteral renders ip per RFC 5321 §4.1.3.
func addressLiteral(ip net.IP) string {
	if ip == nil {
		return "[127.0.0.1]"
	}
	if v4 := ip.To4(); v4 != nil {
		return "[" + v4.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}
