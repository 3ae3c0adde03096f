// Package config loads mailq's TOML configuration over its embedded
// defaults and validates it (docs/configuration.md).
package config

// This file is the contract other packages code against. Loading,
// defaults and validation live in the other files of this package.

import (
	"time"

	"mailq/smtpproto"
)

// Duration is a time.Duration written in TOML as a Go duration string ("5m").
type Duration struct{ time.Duration }

// Config is the whole effective configuration.
type Config struct {
	DataDir        string   `toml:"data_dir"`
	Retention      Duration `toml:"retention"`
	Hostname       string   `toml:"hostname"`
	MaxMessageSize int64    `toml:"max_message_size"`
	ShutdownGrace  Duration `toml:"shutdown_grace"`
	LogLevel       string   `toml:"log_level"`  // debug, info, warn, error; default info
	LogFormat      string   `toml:"log_format"` // json (default) or console

	// Queue says where the queue lives: bbolt in data_dir, or PostgreSQL
	// shared by several nodes (queue.go).
	Queue      Queue        `toml:"queue"`
	Control    Control      `toml:"control"`
	Maildrop   Maildrop     `toml:"maildrop"`
	Delivery   Delivery     `toml:"delivery"`
	Retry      Retry        `toml:"retry"`
	Metrics    Metrics      `toml:"metrics"`
	Submission []Submission `toml:"submission"`
	Routes     []Route      `toml:"route"`
	// MX holds the settings of routes with mx = true; TLSPolicies their
	// per-domain TLS requirements.
	MX          MX          `toml:"mx"`
	TLSPolicies []TLSPolicy `toml:"tls_policy"`
	// Webhooks receive delivery events; Suppression is the suppression
	// list (webhooks.go).
	Webhooks    []Webhook   `toml:"webhook"`
	Suppression Suppression `toml:"suppression"`

	// Path is the file this was loaded from ("" = embedded defaults only).
	Path string `toml:"-"`
}

type Control struct {
	Socket      string `toml:"socket"`
	SocketGroup string `toml:"socket_group"`
}

type Maildrop struct {
	Dir          string   `toml:"dir"`
	PollInterval Duration `toml:"poll_interval"`
}

type Delivery struct {
	Workers               int      `toml:"workers"`
	PerRouteConnections   int      `toml:"per_route_connections"`
	MessagesPerConnection int      `toml:"messages_per_connection"`
	IdleTimeout           Duration `toml:"idle_timeout"` // pooled connections idle longer are closed; default 30s
}

type Retry struct {
	Initial      Duration `toml:"initial"`
	Multiplier   float64  `toml:"multiplier"`
	MaxInterval  Duration `toml:"max_interval"`
	Jitter       float64  `toml:"jitter"`
	MaxLifetime  Duration `toml:"max_lifetime"`
	DelayWarning Duration `toml:"delay_warning"`
}

type Metrics struct {
	Listen string `toml:"listen"`
}

// Submission is one [[submission]] SMTP listener.
type Submission struct {
	Listen          string   `toml:"listen"`
	TLSCertFile     string   `toml:"tls.cert_file"`
	TLSKeyFile      string   `toml:"tls.key_file"`
	ImplicitTLS     bool     `toml:"tls.implicit"` // TLS from the first byte (port 465 style) instead of STARTTLS
	AuthFile        string   `toml:"auth_file"`    // lines "user:hash", bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$...)
	RequireAuth     bool     `toml:"require_auth"`
	RequireTLS      bool     `toml:"require_tls"`
	MaxConns        int      `toml:"max_connections"`        // default 100; more clients get 421 4.7.0
	MaxConnsPerIP   int      `toml:"max_connections_per_ip"` // default 20; more clients from one address get 421 4.7.0
	MaxRecipients   int      `toml:"max_recipients"`         // default 1000
	Timeout         Duration `toml:"timeout"`                // per command line, and per read during DATA; default 5m
	TransferTimeout Duration `toml:"transfer_timeout"`       // one whole DATA/BDAT transfer; default 1h
}

// Route is one [[route]]: the SMTP settings plus its merged retry policy.
type Route struct {
	smtpproto.Settings
	// MX = true delivers to each recipient domain's mail exchangers
	// (RFC 5321 §5.1) instead of host; the keys below apply only then.
	MX                     bool   `toml:"mx"`
	Resolver               string `toml:"resolver"`                // DNS server host:port; "" = [mx] resolver
	MaxMXTries             int    `toml:"max_mx_tries"`            // addresses tried per attempt; default 5
	DestinationConnections int    `toml:"destination_connections"` // open connections per MX host; default 8
	Rate                   string `toml:"rate"`                    // messages per MX host, "100/min"; "" = unlimited
	// RetryPolicy is [retry] merged key by key with this route's [route.retry].
	RetryPolicy Retry `toml:"-"`
}

// MX is the [mx] section: what every mx = true route shares.
type MX struct {
	Resolver    string   `toml:"resolver"`      // DNS server host:port; "" = /etc/resolv.conf
	Timeout     Duration `toml:"timeout"`       // per DNS query; default 5s
	CacheSize   int      `toml:"cache_size"`    // DNS answers cached; default 10000
	HostDown    Duration `toml:"host_down"`     // skip a host that failed to connect this long, doubling; default 5m
	HostDownMax Duration `toml:"host_down_max"` // cap of that doubling; default 1h
	MTASTS      bool     `toml:"mta_sts"`       // honour MTA-STS policies (RFC 8461); default true
	MTASTSCA    string   `toml:"mta_sts_ca_file"`
}

// TLSPolicy is one [[tls_policy]]: the TLS mail to a domain requires on
// mx = true routes, taking precedence over MTA-STS.
type TLSPolicy struct {
	Domain  string `toml:"domain"`  // "example.com", or ".example.com" for its subdomains
	Require string `toml:"require"` // verify, encrypt or none
}

// Implemented in the other files:
//
//	func Default() *Config                        // the embedded defaults of docs/configuration.md
//	func Find(flagPath string) string             // --config, then $MAILQ_CONFIG, then /etc/mailq/mailq.toml if it exists, else ""
//	func Load(path string) (*Config, error)       // "" = embedded defaults; strict keys; validated; errors name section/route and key
//	func (c *Config) Validate() error
//	func (c *Config) String() string              // effective config as TOML, secrets masked (for --check-config)
