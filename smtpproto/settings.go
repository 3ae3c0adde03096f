package smtpproto

// Settings is one route: where mail for some domains goes and how to talk
// to it. Keys are the JavaMail property names without "mail.smtp."
// (smtp-properties.md §1). Pointers distinguish "unset" from the zero value
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
	AllowUTF8     bool   `toml:"allowutf8"`
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
