package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"mailq/smtpproto"
)

// TestWarnings: a literal password, ssl.trust "*" without identity
// checks, and allow8bitmime (which does nothing: mailq never rewrites) are
// each named with their route and key; a clean route gives none.
func TestWarnings(t *testing.T) {
	cases := []struct {
		name  string
		route string
		want  []string
	}{
		{"clean", `password_env = "X"`, nil},
		{"literal password", `password = "s3cret"`, []string{`route "r": key "password"`}},
		{"trust all without identity", `"ssl.trust" = "*"` + "\n" + `"ssl.checkserveridentity" = false`, []string{`route "r": "ssl.trust" = "*" with "ssl.checkserveridentity" = false`}},
		{"trust all with identity", `"ssl.trust" = "*"`, nil},
		{"allow8bitmime", `allow8bitmime = true`, []string{`route "r": key "allow8bitmime" = true has no effect`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("[[route]]\nname = \"r\"\ndomains = [\"*\"]\nhost = \"relay.test\"\n" + tc.route + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("warning %q, want it to start %q", got[i], w)
				}
				if strings.Contains(got[i], "s3cret") {
					t.Errorf("warning shows the password: %q", got[i])
				}
				if !strings.Contains(cfg.String(), "# warning: "+got[i]) {
					t.Errorf("--check-config output lacks the warning %q", got[i])
				}
			}
		})
	}
}

// TestCheckConfigPrintsEveryKey: --check-config shows every route key,
// the unset ones with the value that applies (writetimeout, ehlo,
// quitwait, noop.strict, ssl.checkserveridentity, allowutf8, auth.ntlm.v2,
// auth.xoauth2.disable were missing).
func TestCheckConfigPrintsEveryKey(t *testing.T) {
	cfg, err := Parse([]byte("[[route]]\nname = \"r\"\ndomains = [\"*\"]\nhost = \"localhost\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := cfg.String()
	st := reflect.TypeOf(smtpproto.Settings{})
	for i := 0; i < st.NumField(); i++ {
		key := st.Field(i).Tag.Get("toml")
		if key == "" || key == "-" || key == "retry" {
			continue
		}
		if !strings.Contains(out, "\n"+key+" = ") && !strings.Contains(out, "\n\""+key+"\" = ") {
			t.Errorf("--check-config does not print route key %q", key)
		}
	}
	for _, want := range []string{`host = "localhost"`, "port = 25", "writetimeout = 300000", `"ssl.checkserveridentity" = true`, `"auth.xoauth2.disable" = true`} {
		if !strings.Contains(out, "\n"+want+"\n") {
			t.Errorf("--check-config lacks %s", want)
		}
	}
}

// TestRouteWithoutHostAsDocumented: config.example.toml documented host's
// default as "localhost" while a route without host was an error; now the
// example says host is required unless mx = true, as validation does.
func TestRouteWithoutHostAsDocumented(t *testing.T) {
	if _, err := Parse([]byte("[[route]]\nname = \"r\"\ndomains = [\"*\"]\n")); err == nil || !strings.Contains(err.Error(), `key "host" must not be empty`) {
		t.Errorf("a route without host: %v, want the host error", err)
	}
	text, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, "# "), "host = ") && strings.Contains(l, `default "localhost"`) {
			t.Errorf("config.example.toml still documents a default host: %s", l)
		}
	}
}
