package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const examplePath = "../config.example.toml"

func TestExampleLoads(t *testing.T) {
	t.Setenv("MAILQ_RELAY_PASSWORD", "from-the-environment")
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatalf("config.example.toml does not load: %v", err)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].Name != "relay" || cfg.Routes[1].Name != "partner" {
		t.Fatalf("example routes = %+v, want relay and partner", cfg.Routes)
	}
	if got := cfg.Routes[0].RetryPolicy.MaxLifetime.Duration; got != 48*time.Hour {
		t.Errorf("relay [route.retry] max_lifetime = %v, want 48h", got)
	}
	if got := cfg.Routes[1].RetryPolicy; got != cfg.Retry {
		t.Errorf("partner retry policy = %+v, want the global %+v", got, cfg.Retry)
	}
	if out := cfg.String(); strings.Contains(out, "change-me") {
		t.Errorf("String() of the example shows the partner password:\n%s", out)
	}
}

// TestExampleDocumentsEveryKey keeps the example from drifting: every key
// the code accepts appears in it, as a setting or as a commented one.
func TestExampleDocumentsEveryKey(t *testing.T) {
	text, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	present := func(key string) bool {
		re := regexp.MustCompile(`(?m)^#?\s*("` + regexp.QuoteMeta(key) + `"|` + regexp.QuoteMeta(key) + `)\s*=`)
		return re.Match(text)
	}
	sections := map[string]reflect.Type{
		"(top level)":    configType,
		"[queue]":        reflect.TypeOf(Queue{}),
		"[control]":      reflect.TypeOf(Control{}),
		"[maildrop]":     reflect.TypeOf(Maildrop{}),
		"[delivery]":     reflect.TypeOf(Delivery{}),
		"[retry]":        retryType,
		"[metrics]":      reflect.TypeOf(Metrics{}),
		"[[submission]]": reflect.TypeOf(Submission{}),
		"[[route]]":      reflect.TypeOf(Route{}),
		"[mx]":           reflect.TypeOf(MX{}),
		"[[tls_policy]]": reflect.TypeOf(TLSPolicy{}),
		"[[webhook]]":    reflect.TypeOf(Webhook{}),
		"[suppression]":  reflect.TypeOf(Suppression{}),
	}
	for section, typ := range sections {
		for key, f := range fieldsByTag(typ) {
			nested := f.Type.Kind() == reflect.Struct && f.Type != durationType
			if nested || f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct || key == "retry" {
				continue // a section, documented by its own keys
			}
			if !present(key) {
				t.Errorf("config.example.toml does not document %s key %q", section, key)
			}
		}
	}
}

// The configuration `make install` puts in /etc/mailq must load, and must
// use the directories the systemd unit provides.
func TestSystemdConfigLoads(t *testing.T) {
	cfg, err := Load("../systemd/mailq.toml")
	if err != nil {
		t.Fatalf("systemd/mailq.toml does not load: %v", err)
	}
	want := map[string]string{
		"data_dir":       "/var/lib/mailq",            // StateDirectory=mailq
		"control.socket": "/run/mailq/control.sock",   // RuntimeDirectory=mailq
		"maildrop.dir":   "/var/spool/mailq/maildrop", // tmpfiles.d, ReadWritePaths=
	}
	got := map[string]string{"data_dir": cfg.DataDir, "control.socket": cfg.Control.Socket, "maildrop.dir": cfg.Maildrop.Dir}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	unit, err := os.ReadFile("../systemd/mailq.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"StateDirectory=mailq", "RuntimeDirectory=mailq", "ReadWritePaths=/var/spool/mailq", "Type=notify"} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("mailq.service lacks %q", line)
		}
	}
}
