package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDefaults(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", cfg.DataDir, "./mailq-data"},
		{"control.socket", cfg.Control.Socket, "./mailq-data/control.sock"},
		{"control.socket_group", cfg.Control.SocketGroup, "mailq"},
		{"maildrop.dir", cfg.Maildrop.Dir, "./mailq-data/maildrop"},
		{"maildrop.poll_interval", cfg.Maildrop.PollInterval.Duration, 2 * time.Second},
		{"submission count", len(cfg.Submission), 1},
		{"submission listen", cfg.Submission[0].Listen, "127.0.0.1:2525"},
		{"route count", len(cfg.Routes), 1},
		{"route name", cfg.Routes[0].Name, "default"},
		{"route domains", strings.Join(cfg.Routes[0].Domains, ","), "*"},
		{"route host", cfg.Routes[0].Host, "localhost"},
		{"route port", cfg.Routes[0].Port, 25},
		{"retry.initial", cfg.Retry.Initial.Duration, 5 * time.Minute},
		{"retry.multiplier", cfg.Retry.Multiplier, 2.0},
		{"retry.max_interval", cfg.Retry.MaxInterval.Duration, time.Hour},
		{"retry.jitter", cfg.Retry.Jitter, 0.1},
		{"retry.max_lifetime", cfg.Retry.MaxLifetime.Duration, 120 * time.Hour},
		{"retry.delay_warning", cfg.Retry.DelayWarning.Duration, 4 * time.Hour},
		{"route retry policy", cfg.Routes[0].RetryPolicy, cfg.Retry},
		{"workers", cfg.Delivery.Workers, 32},
		{"per_route_connections", cfg.Delivery.PerRouteConnections, 8},
		{"messages_per_connection", cfg.Delivery.MessagesPerConnection, 100},
		{"idle_timeout", cfg.Delivery.IdleTimeout.Duration, 30 * time.Second},
		{"retention", cfg.Retention.Duration, 168 * time.Hour},
		{"max_message_size", cfg.MaxMessageSize, int64(36700160)},
		{"shutdown_grace", cfg.ShutdownGrace.Duration, 30 * time.Second},
		{"log_level", cfg.LogLevel, "info"},
		{"log_format", cfg.LogFormat, "json"},
		{"metrics.listen", cfg.Metrics.Listen, ""},
		{"hostname set", cfg.Hostname != "", true},
		{"path", cfg.Path, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// parse decodes a snippet and fails the test on error.
func parse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", text, err)
	}
	return cfg
}

const twoRoutes = `
[retry]
initial = "1m"
max_interval = "2h"

[[route]]
name = "relay"
domains = ["*"]
host = "smtp.example.com"
port = 587
"starttls.required" = true
password = "s3cret-relay"
"proxy.host" = "127.0.0.1"
"proxy.port" = 3128
"proxy.user" = "tunnel"
"proxy.password" = "s3cret-proxy"

[route.retry]
multiplier = 3
max_lifetime = "24h"

[[route]]
name = "internal"
domains = ["example.org", ".example.org"]
host = "mx.example.org"
`

func TestMerging(t *testing.T) {
	cfg := parse(t, twoRoutes)
	def := DefaultRetry()
	tests := []struct {
		name      string
		got, want any
	}{
		{"partial [retry] sets initial", cfg.Retry.Initial.Duration, time.Minute},
		{"partial [retry] sets max_interval", cfg.Retry.MaxInterval.Duration, 2 * time.Hour},
		{"partial [retry] keeps multiplier", cfg.Retry.Multiplier, def.Multiplier},
		{"partial [retry] keeps jitter", cfg.Retry.Jitter, def.Jitter},
		{"partial [retry] keeps max_lifetime", cfg.Retry.MaxLifetime, def.MaxLifetime},
		{"routes replace the default", len(cfg.Routes), 2},
		{"first route", cfg.Routes[0].Name, "relay"},
		{"default route's port not merged into a file route", cfg.Routes[1].Port, 0},
		{"quoted dotted key", cfg.Routes[0].StartTLSRequired, true},
		{"route retry: own multiplier", cfg.Routes[0].RetryPolicy.Multiplier, 3.0},
		{"route retry: own max_lifetime", cfg.Routes[0].RetryPolicy.MaxLifetime.Duration, 24 * time.Hour},
		{"route retry: global initial", cfg.Routes[0].RetryPolicy.Initial.Duration, time.Minute},
		{"route retry: global max_interval", cfg.Routes[0].RetryPolicy.MaxInterval.Duration, 2 * time.Hour},
		{"route retry: default jitter", cfg.Routes[0].RetryPolicy.Jitter, def.Jitter},
		{"route without [route.retry] takes [retry]", cfg.Routes[1].RetryPolicy, cfg.Retry},
		{"submission untouched when absent", len(cfg.Submission), 1},
		{"other sections keep defaults", cfg.Delivery.Workers, 32},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestSubmissionArrays(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		listen []string
	}{
		{"absent keeps the embedded listener", `data_dir = "/x"`, []string{"127.0.0.1:2525"}},
		{"empty array means none", `submission = []`, nil},
		{"tables replace the embedded listener", "[[submission]]\nlisten = \"127.0.0.1:2600\"\n[[submission]]\nlisten = \"[::1]:2601\"\nmax_connections = 5\n",
			[]string{"127.0.0.1:2600", "[::1]:2601"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.text)
			var got []string
			for _, s := range cfg.Submission {
				got = append(got, s.Listen)
			}
			if strings.Join(got, " ") != strings.Join(tt.listen, " ") {
				t.Fatalf("listeners = %q, want %q", got, tt.listen)
			}
			for _, s := range cfg.Submission {
				if s.MaxRecipients != DefaultSubmissionMaxRecipients || s.Timeout.Duration != DefaultSubmissionTimeout {
					t.Errorf("listener %s lost its per-listener defaults: %+v", s.Listen, s)
				}
			}
		})
	}
	cfg := parse(t, "[[submission]]\nlisten = \"127.0.0.1:2600\"\nmax_connections = 5\n")
	if cfg.Submission[0].MaxConns != 5 {
		t.Errorf("max_connections = %d, want 5", cfg.Submission[0].MaxConns)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	route := "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"h\"\n"
	tests := []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "data_dri = \"/x\"", []string{`"data_dri"`, "unknown"}},
		{"unknown key in a section", "[retry]\ninital = \"1m\"", []string{"[retry]", `"inital"`, "unknown"}},
		{"unknown key in a route", route + "prot = 25\n", []string{`route "relay"`, `"prot"`, "unknown"}},
		{"unquoted dotted key", route + "starttls.required = true\n", []string{`route "relay"`, `"starttls"`, `"starttls.required"`}},
		{"unknown key in route.retry", route + "[route.retry]\nmultipler = 3\n", []string{`route "relay"`, "route.retry", `"multipler"`}},
		{"unnamed route", "[[route]]\ndomains = [\"*\"]\nhost = \"h\"\nprot = 1\n", []string{"route #1", `"prot"`}},
		{"wrong type in a route", route + "port = \"25\"\n", []string{`route "relay"`, `"port"`, "integer"}},
		{"wrong type for a pointer key", route + "connectiontimeout = \"30s\"\n", []string{`route "relay"`, `"connectiontimeout"`, "integer"}},
		{"wrong type in a section", "[delivery]\nworkers = \"many\"", []string{"[delivery]", `"workers"`, "integer"}},
		{"bad duration", "[retry]\ninitial = \"5 minutes\"", []string{"[retry]", `"initial"`, "duration"}},
		{"duration as a number", "retention = 10", []string{`"retention"`, "duration"}},
		{"section given a value", "retry = 5", []string{`"retry"`, "table"}},
		{"wrong type in route.retry", route + "[route.retry]\njitter = \"lots\"\n", []string{`route "relay"`, `"jitter"`, "number"}},
		{"syntax error has a line", "data_dir = \n", []string{"line 1"}},
		{"zero workers", "[delivery]\nworkers = 0", []string{`"workers"`, "at least 1"}},
		{"multiplier below 1", "[retry]\nmultiplier = 0.5", []string{"[retry]", `"multiplier"`}},
		{"jitter of 1", "[retry]\njitter = 1.0", []string{"[retry]", `"jitter"`}},
		{"negative jitter in a route", route + "[route.retry]\njitter = -0.1\n", []string{`route "relay"`, `"jitter"`}},
		{"zero duration", "shutdown_grace = \"0s\"", []string{`"shutdown_grace"`, "positive"}},
		{"duplicate route names", route + route, []string{`route "relay"`, "same name"}},
		{"empty domains", "[[route]]\nname = \"r\"\ndomains = []\nhost = \"h\"\n", []string{`route "r"`, `"domains"`}},
		{"no routes", "route = []", []string{"no [[route]]"}},
		{"bad log level", "log_level = \"loud\"", []string{`"log_level"`}},
		{"bad listen address", "[[submission]]\nlisten = \"2525\"\n", []string{`submission "2525"`, `"listen"`}},
		{"metrics listen", "[metrics]\nlisten = \"nowhere\"", []string{"[metrics]", `"listen"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.text)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStringMasksSecretsAndRoundTrips(t *testing.T) {
	cfg := parse(t, twoRoutes)
	out := cfg.String()
	for _, secret := range []string{"s3cret-relay", "s3cret-proxy"} {
		if strings.Contains(out, secret) {
			t.Errorf("String() shows the secret %q:\n%s", secret, out)
		}
	}
	if got := strings.Count(out, Masked); got != 2 {
		t.Errorf("String() has %d masked values, want 2:\n%s", got, out)
	}
	if cfg.Routes[0].Password != "s3cret-relay" {
		t.Errorf("String() changed the config itself: password = %q", cfg.Routes[0].Password)
	}
	// Without secrets, the output is a configuration that loads to the same values.
	cfg.Routes[0].Password, cfg.Routes[0].ProxyPassword, cfg.Routes[0].ProxyUser = "", "", ""
	again, err := Parse([]byte(cfg.String()))
	if err != nil {
		t.Fatalf("String() output does not load: %v\n%s", err, cfg.String())
	}
	if again.String() != cfg.String() {
		t.Errorf("round trip changed the configuration:\nfirst:\n%s\nsecond:\n%s", cfg.String(), again.String())
	}
	none := parse(t, "submission = []")
	again, err = Parse([]byte(none.String()))
	if err != nil {
		t.Fatalf("submission = [] does not survive String(): %v\n%s", err, none.String())
	}
	if len(again.Submission) != 0 {
		t.Errorf("submission = [] came back as %d listeners", len(again.Submission))
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[delivery]\nworkers = -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "workers") {
		t.Fatalf("Load(bad file) error = %v; want it to name %s and workers", err, path)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("Load(missing) error = %v; want it to name the file", err)
	}
	good := filepath.Join(t.TempDir(), "good.toml")
	if err := os.WriteFile(good, []byte("data_dir = \"/srv/q\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(good)
	if err != nil || cfg.Path != good || cfg.DataDir != "/srv/q" {
		t.Fatalf("Load(good) = %+v, %v", cfg, err)
	}
}

// The TOML decoder must never see a key that checkTable let through as
// unknown: both must agree on the field set (guards fieldsByTag).
func TestEveryFieldHasAKey(t *testing.T) {
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(Default()); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(buf.String())); err != nil {
		t.Fatalf("encoded defaults do not load: %v\n%s", err, buf.String())
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in    string
		count int
		per   time.Duration
		bad   bool
	}{
		{"", 0, 0, false},
		{"100/min", 100, time.Minute, false},
		{"5/s", 5, time.Second, false},
		{"3600 / hour", 3600, time.Hour, false},
		{"0/min", 0, 0, true},
		{"100", 0, 0, true},
		{"100/day", 0, 0, true},
		{"x/min", 0, 0, true},
	}
	for _, tt := range tests {
		count, per, err := ParseRate(tt.in)
		if (err != nil) != tt.bad || count != tt.count || per != tt.per {
			t.Errorf("ParseRate(%q) = %d, %v, %v; want %d, %v, error %v", tt.in, count, per, err, tt.count, tt.per, tt.bad)
		}
	}
}

func TestMXConfig(t *testing.T) {
	base := "[[route]]\nname = \"direct\"\ndomains = [\"*\"]\n"
	tests := []struct {
		name, text, wantErr string
	}{
		{"mx route", base + "mx = true\nresolver = \"127.0.0.1:5353\"\nrate = \"100/min\"\ndestination_connections = 4\n" +
			"[[tls_policy]]\ndomain = \"example.com\"\nrequire = \"verify\"\n[mx]\nhost_down = \"1m\"\n", ""},
		{"mx with host", base + "mx = true\nhost = \"smtp.example.com\"\n", "exclude each other"},
		{"no host, no mx", base, "or set mx = true"},
		{"mx keys without mx", base + "host = \"h\"\nrate = \"1/s\"\n", "need mx = true"},
		{"bad rate", base + "mx = true\nrate = \"lots\"\n", "key \"rate\""},
		{"bad resolver", base + "mx = true\nresolver = \"a b\"\n", "key \"resolver\""},
		{"bad require", base + "mx = true\n[[tls_policy]]\ndomain = \"example.com\"\nrequire = \"maybe\"\n", "verify, encrypt or none"},
		{"duplicate policy", base + "mx = true\n[[tls_policy]]\ndomain = \"a.test\"\nrequire = \"none\"\n[[tls_policy]]\ndomain = \"A.test\"\nrequire = \"verify\"\n", "another [[tls_policy]]"},
		{"unknown policy key", base + "mx = true\n[[tls_policy]]\ndomain = \"a.test\"\nrequire = \"none\"\nmode = \"x\"\n", "unknown"},
		{"down max below", base + "mx = true\n[mx]\nhost_down = \"2h\"\n", "host_down_max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.text))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				r := cfg.Routes[0]
				if !r.MX || r.Resolver != "127.0.0.1:5353" || r.Rate != "100/min" || r.DestinationConnections != 4 ||
					len(cfg.TLSPolicies) != 1 || cfg.TLSPolicies[0].Require != "verify" || cfg.MX.HostDown.Duration != time.Minute || !cfg.MX.MTASTS {
					t.Errorf("parsed %+v / %+v / %+v", r, cfg.TLSPolicies, cfg.MX)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWebhookAndSuppressionConfig(t *testing.T) {
	cfg, err := Parse([]byte(`
[[webhook]]
url = "https://user:pw@app.example/hook"
events = ["bounced"]
[suppression]
ttl = "24h"
refuse_at_rcpt = true
`))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Webhooks[0]
	if w.Timeout.Duration != 10*time.Second || w.MaxAge.Duration != 24*time.Hour || w.Workers != 4 {
		t.Errorf("webhook defaults = %+v", w)
	}
	if s := cfg.Suppression; !s.Enabled || s.TTL.Duration != 24*time.Hour || !s.RefuseAtRcpt || len(s.Codes) == 0 {
		t.Errorf("suppression = %+v", s)
	}
	if out := cfg.String(); strings.Contains(out, "pw@") {
		t.Errorf("String() shows the webhook URL's password:\n%s", out)
	}
	for _, bad := range []struct{ text, want string }{
		{"[[webhook]]\nurl = \"ftp://x\"\n", `"url" must be an http:// or https:// URL`},
		{"[[webhook]]\nurl = \"http://x\"\nevents = [\"opened\"]\n", `unknown event type "opened"`},
		{"[[webhook]]\nurl = \"http://x\"\n[[webhook]]\nurl = \"http://x\"\n", "same name"},
		{"[[webhook]]\nurl = \"http://x\"\nworkers = 0\n", `"workers" must be at least 1`},
		{"[suppression]\nttl = \"0s\"\n", `"ttl" must be a positive duration`},
		{"[[webhook]]\nurl = \"http://x\"\nsecret = \"s\"\n", "unknown"},
	} {
		if _, err := Parse([]byte(bad.text)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", bad.text, err, bad.want)
		}
	}
}
