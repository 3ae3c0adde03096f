package config

import (
	"bytes"
	"fmt"
	"net/url"

	"github.com/BurntSushi/toml"
)

// Masked replaces every secret in String's output.
const Masked = "********"

// String is the effective configuration as TOML, with secrets masked, as
// printed by `mailq --check-config`. Each route shows its merged retry
// policy as its [route.retry] table.
func (c *Config) String() string {
	shown := *c
	shown.Routes = make([]Route, len(c.Routes))
	for i, r := range c.Routes {
		// Every key, the unset ones with the value that applies.
		host := r.Host
		r.Settings = r.Settings.Effective()
		if r.MX {
			r.Host = host // an MX route's hosts come from DNS
		}
		r.Domains = append([]string(nil), r.Domains...)
		if r.Password != "" {
			r.Password = Masked
		}
		if r.ProxyPassword != "" {
			r.ProxyPassword = Masked
		}
		p := r.RetryPolicy
		r.Retry = map[string]any{
			"initial":       p.Initial.String(),
			"multiplier":    p.Multiplier,
			"max_interval":  p.MaxInterval.String(),
			"jitter":        p.Jitter,
			"max_lifetime":  p.MaxLifetime.String(),
			"delay_warning": p.DelayWarning.String(),
		}
		shown.Routes[i] = r
	}
	shown.Webhooks = make([]Webhook, len(c.Webhooks))
	for i, w := range c.Webhooks {
		if u, err := url.Parse(w.URL); err == nil {
			w.URL = u.Redacted() // user:password@ in a URL is a secret too
		}
		shown.Webhooks[i] = w
	}
	if shown.Queue.DSN != "" {
		shown.Queue.DSN = Masked
	}
	source := "embedded defaults"
	if c.Path != "" {
		source = c.Path + " over the embedded defaults"
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# mailq effective configuration: %s\n", source)
	for _, w := range c.Warnings() {
		fmt.Fprintf(&buf, "# warning: %s\n", w)
	}
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(shown); err != nil {
		fmt.Fprintf(&buf, "# cannot encode the configuration: %v\n", err)
	}
	return buf.String()
}
