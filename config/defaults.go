package config

import (
	"os"
	"sync"
	"time"

	"mailq/config/clientconf"
	"mailq/smtpproto"
)

// Defaults for the per-listener keys of [[submission]] (config/api.go).
const (
	DefaultSubmissionMaxConns        = 100
	DefaultSubmissionMaxConnsPerIP   = 20
	DefaultSubmissionTransferTimeout = time.Hour
	DefaultSubmissionMaxRecipients   = 1000
	DefaultSubmissionTimeout         = 5 * time.Minute
)

// DefaultRetry is the global [retry] table of docs/.
func DefaultRetry() Retry {
	return Retry{
		Initial:      D(5 * time.Minute),
		Multiplier:   2.0,
		MaxInterval:  D(time.Hour),
		Jitter:       0.1,
		MaxLifetime:  D(120 * time.Hour),
		DelayWarning: D(4 * time.Hour),
	}
}

// DefaultSubmission is one listener with every default filled in.
func DefaultSubmission(listen string) Submission {
	return Submission{
		Listen:          listen,
		MaxConns:        DefaultSubmissionMaxConns,
		MaxConnsPerIP:   DefaultSubmissionMaxConnsPerIP,
		TransferTimeout: D(DefaultSubmissionTransferTimeout),
		MaxRecipients:   DefaultSubmissionMaxRecipients,
		Timeout:         D(DefaultSubmissionTimeout),
	}
}

// Default returns the embedded defaults of docs/configuration.md: everything lives
// under ./mailq-data/, one submission listener on 127.0.0.1:2525 and one
// route "*" to localhost:25. Each call returns a fresh copy.
func Default() *Config {
	retry := DefaultRetry()
	return &Config{
		DataDir:        "./mailq-data",
		Retention:      D(168 * time.Hour),
		Hostname:       defaultHostname(),
		MaxMessageSize: 36700160,
		ShutdownGrace:  D(30 * time.Second),
		LogLevel:       "info",
		LogFormat:      "json",
		Queue:          DefaultQueue(),
		Control: Control{
			Socket:      clientconf.DefaultSocket,
			SocketGroup: "mailq",
		},
		Maildrop: Maildrop{
			Dir:          clientconf.DefaultMaildrop,
			PollInterval: D(2 * time.Second),
		},
		Delivery: Delivery{
			Workers:               32,
			PerRouteConnections:   8,
			MessagesPerConnection: 100,
			IdleTimeout:           D(30 * time.Second),
		},
		Retry: retry,
		MX: MX{
			Timeout:     D(5 * time.Second),
			CacheSize:   10000,
			HostDown:    D(5 * time.Minute),
			HostDownMax: D(time.Hour),
			MTASTS:      true,
		},
		Submission:  []Submission{DefaultSubmission("127.0.0.1:2525")},
		Suppression: DefaultSuppression(),
		Routes: []Route{{
			Settings: smtpproto.Settings{
				Name:    "default",
				Domains: []string{"*"},
				Host:    "localhost",
				Port:    25,
			},
			RetryPolicy: retry,
		}},
	}
}

var (
	hostnameOnce  sync.Once
	hostnameValue string
)

// defaultHostname is the machine's name, made fully qualified when the
// resolver knows a longer name for it (RFC 5321 §4.1.1.1 wants the FQDN in
// EHLO). It is computed once: a resolver that is slow must not slow every Load.
func defaultHostname() string {
	// No DNS lookup for a fully qualified name: every mailqctl and sendmail
	// call loads the configuration, and a resolver timeout there would stall
	// legacy programs. Operators whose kernel hostname is bare set hostname.
	hostnameOnce.Do(func() {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		hostnameValue = h
	})
	return hostnameValue
}
