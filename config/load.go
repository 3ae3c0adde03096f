package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/BurntSushi/toml"

	"mailq/config/clientconf"
)

// SystemPath is the configuration used when neither --config nor
// MAILQ_CONFIG names one and the file exists.
const SystemPath = clientconf.SystemPath

// Find picks the configuration file the way docs/configuration.md says both
// mailq and mailqctl do (clientconf.Find).
func Find(flagPath string) string { return clientconf.Find(flagPath) }

// Load reads the TOML file at path over the embedded defaults and validates
// the result. path "" means the embedded defaults alone.
func Load(path string) (*Config, error) {
	if path == "" {
		cfg := Default()
		if err := cfg.finish(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: cannot read %s: %w", path, err)
	}
	cfg, err := Parse(text)
	if err != nil {
		// One line per problem, each naming the file.
		return nil, errors.Join(prefixEach(path+": ", err)...)
	}
	cfg.Path = path
	return cfg, nil
}

// Parse decodes TOML text over the embedded defaults, key by key, and
// validates the result. Tables merge key by key; the [[submission]] and
// [[route]] arrays, when present, replace the embedded ones entirely.
func Parse(text []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(text), &raw); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// Check names and types first, on the generic tree, so an error can name
	// the route by its name (BurntSushi's errors only know "route.port").
	if err := errors.Join(checkTable("", raw, configType)...); err != nil {
		return nil, err
	}

	cfg := Default()
	if subs, ok := raw["submission"]; ok {
		// Pre-fill each listener with its defaults; the decoder reuses the
		// elements when the slice is long enough.
		n := len(tables(subs))
		cfg.Submission = make([]Submission, n)
		for i := range cfg.Submission {
			cfg.Submission[i] = DefaultSubmission("")
		}
	}
	if hooks, ok := raw["webhook"]; ok {
		cfg.Webhooks = make([]Webhook, len(tables(hooks)))
		for i := range cfg.Webhooks {
			cfg.Webhooks[i] = DefaultWebhook()
		}
	}
	if _, ok := raw["route"]; ok {
		n := len(tables(raw["route"]))
		cfg.Routes = make([]Route, n)
	}
	md, err := toml.Decode(string(text), cfg)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		// checkTable should have caught these; this is the safety net.
		return nil, fmt.Errorf("config: unknown key %q", undecoded[0].String())
	}
	if err := cfg.finish(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// finish computes the derived fields (each route's merged retry policy) and
// validates.
func (c *Config) finish() error {
	for i := range c.Routes {
		r := &c.Routes[i]
		policy, err := mergeRetry(c.Retry, r.Retry)
		if err != nil {
			return fmt.Errorf("config: route %q [route.retry]: %w", r.Name, err)
		}
		r.RetryPolicy = policy
	}
	return c.Validate()
}

// mergeRetry lays a route's [route.retry] table over the global [retry],
// key by key. The table's keys and types were checked by checkTable.
func mergeRetry(base Retry, table map[string]any) (Retry, error) {
	if len(table) == 0 {
		return base, nil
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(table); err != nil {
		return base, err
	}
	merged := base
	md, err := toml.Decode(buf.String(), &merged)
	if err != nil {
		return base, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return base, fmt.Errorf("unknown key %q", undecoded[0].String())
	}
	return merged, nil
}

// tables returns the tables of a TOML array of tables, whichever way the
// decoder represented it; nil for anything else.
func tables(v any) []map[string]any {
	switch a := v.(type) {
	case []map[string]any:
		return a
	case []any:
		out := make([]map[string]any, 0, len(a))
		for _, e := range a {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// describe names a position in the file for an error message.
func describe(where, key string) string {
	if where == "" {
		return fmt.Sprintf("key %q", key)
	}
	return fmt.Sprintf("%s: key %q", where, key)
}
