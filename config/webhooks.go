package config

import (
	"fmt"
	"net/url"

	"mailq/events"
	"mailq/suppression"
)

// Webhook is one [[webhook]]: where delivery events are posted.
type Webhook struct {
	Name       string   `toml:"name"`        // default: the URL; names the cursor and the metrics label
	URL        string   `toml:"url"`         // http:// or https://
	Events     []string `toml:"events"`      // default: every type
	SecretFile string   `toml:"secret_file"` // HMAC-SHA256 key for the Mailq-Signature header; "" = unsigned
	CAFile     string   `toml:"ca_file"`     // PEM CA bundle to verify an https:// endpoint; "" = system roots
	Timeout    Duration `toml:"timeout"`     // per POST; default 10s
	MaxAge     Duration `toml:"max_age"`     // an event not acknowledged this long is given up; default 24h
	Workers    int      `toml:"workers"`     // parallel POSTs; default 4
}

// Suppression is the [suppression] table.
type Suppression struct {
	Enabled      bool     `toml:"enabled"`        // default true
	Codes        []string `toml:"codes"`          // enhanced statuses meaning "no such address"
	TTL          Duration `toml:"ttl"`            // how long an entry holds; default 720h (30 days)
	RefuseAtRcpt bool     `toml:"refuse_at_rcpt"` // refuse a suppressed recipient at SMTP RCPT with 550 instead of bouncing it later
	SkipRoutes   []string `toml:"skip_routes"`    // routes the list does not apply to
}

// DefaultWebhook is one [[webhook]] with every default filled in.
func DefaultWebhook() Webhook {
	return Webhook{Timeout: D(events.DefaultTimeout), MaxAge: D(events.DefaultMaxAge), Workers: events.DefaultWorkers}
}

// DefaultSuppression is the [suppression] table's defaults.
func DefaultSuppression() Suppression {
	return Suppression{Enabled: true, Codes: append([]string(nil), suppression.DefaultCodes...), TTL: D(suppression.DefaultTTL)}
}

func (c *Config) validateWebhooks() []error {
	var errs []error
	names := map[string]bool{}
	for i, w := range c.Webhooks {
		where := fmt.Sprintf("webhook #%d", i+1)
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{where}, args...)...))
		}
		if u, err := url.Parse(w.URL); err != nil {
			bad("key \"url\" must be an http:// or https:// URL: %v", err)
		} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("key \"url\" must be an http:// or https:// URL, got %q", u.Redacted())
		}
		name := w.Name
		if name == "" {
			name = w.URL
		}
		if names[name] {
			bad("another [[webhook]] has the same name (or URL); set distinct \"name\" keys")
		}
		names[name] = true
		for _, e := range w.Events {
			if !validEventType(e) {
				bad("key \"events\": unknown event type %q (known: %v)", e, events.AllTypes)
			}
		}
		if w.Timeout.Duration <= 0 || w.MaxAge.Duration <= 0 {
			bad("keys \"timeout\" and \"max_age\" must be positive durations")
		}
		if w.Workers < 1 {
			bad("key \"workers\" must be at least 1, got %d", w.Workers)
		}
	}
	if c.Suppression.TTL.Duration <= 0 {
		errs = append(errs, fmt.Errorf("config: [suppression]: key \"ttl\" must be a positive duration such as \"720h\""))
	}
	return errs
}

func validEventType(s string) bool {
	for _, t := range events.AllTypes {
		if string(t) == s {
			return true
		}
	}
	return false
}
