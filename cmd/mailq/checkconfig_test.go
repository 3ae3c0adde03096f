package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const authRoute = "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"127.0.0.1\"\nauth = true\nuser = \"u\"\n"
	envRoute := write("env.toml", authRoute+"password_env = \"RELAY_PASSWORD\"\n")
	credRoute := write("cred.toml", authRoute+"password_file = \"$CREDENTIALS_DIRECTORY/relay.pass\"\n")
	credDir := filepath.Join(dir, "credentials")
	if err := os.Mkdir(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	write("credentials/relay.pass", "cred-secret-value\n")
	secret := write("secret.toml", "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"127.0.0.1\"\npassword = \"hunter2-secret\"\n")
	// The example's relay takes its password from MAILQ_RELAY_PASSWORD,
	// set for every case but those that test a missing secret.
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stdout+stderr
		never    []string
		env      []string
	}{
		{"example config is valid", []string{"--check-config", "--config", "../../config.example.toml"}, 0,
			[]string{"[[route]]", "[retry]", "********"}, []string{"change-me"}, nil},
		{"embedded defaults", []string{"--check-config", "--config", write("empty.toml", "")}, 0,
			[]string{`listen = "127.0.0.1:2525"`, `host = "localhost"`}, nil, nil},
		{"secret masked", []string{"--check-config", "--config", secret}, 0,
			[]string{"********"}, []string{"hunter2-secret"}, nil},
		{"unknown route key", []string{"--check-config", "--config", write("bad.toml", "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"h\"\nprot = 25\n")}, 1,
			[]string{`route "relay"`, `"prot"`}, nil, nil},
		{"unknown section key", []string{"--check-config", "--config", write("bad2.toml", "[retry]\ninital = \"1m\"\n")}, 1,
			[]string{"[retry]", `"inital"`}, nil, nil},
		{"missing file", []string{"--check-config", "--config", filepath.Join(dir, "nope.toml")}, 1,
			[]string{"nope.toml"}, nil, nil},
		{"version", []string{"--version"}, 0, []string{"mailq "}, nil, nil},
		// Issue 12: secrets under systemd (EnvironmentFile=, LoadCredential=).
		{"password_env not set", []string{"--check-config", "--config", envRoute}, 1,
			[]string{`route "relay"`, "RELAY_PASSWORD", "not set"}, nil, nil},
		{"password_env set", []string{"--check-config", "--config", envRoute}, 0,
			[]string{`password_env = "RELAY_PASSWORD"`}, []string{"env-secret-value"}, []string{"RELAY_PASSWORD=env-secret-value"}},
		{"credential present", []string{"--check-config", "--config", credRoute}, 0,
			[]string{"CREDENTIALS_DIRECTORY"}, []string{"cred-secret-value"}, []string{"CREDENTIALS_DIRECTORY=" + credDir}},
		{"credential file missing", []string{"--check-config", "--config", credRoute}, 1,
			[]string{`route "relay"`, "relay.pass"}, nil, []string{"CREDENTIALS_DIRECTORY=" + dir}},
		{"no credentials directory", []string{"--check-config", "--config", credRoute}, 1,
			[]string{"CREDENTIALS_DIRECTORY", "LoadCredential="}, nil, nil},
		{"password_file missing", []string{"--check-config", "--config", write("pf.toml", authRoute+"password_file = \"/nonexistent/relay.pass\"\n")}, 1,
			[]string{`route "relay"`, "/nonexistent/relay.pass"}, nil, nil},
		{"stray argument", []string{"start"}, 2, []string{"unexpected argument"}, nil, nil},
	}
	bin := buildMailq(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = []string{"MAILQ_CONFIG=", "MAILQ_RELAY_PASSWORD=example"}
			for _, kv := range os.Environ() {
				if name, _, _ := strings.Cut(kv, "="); name != "RELAY_PASSWORD" && name != "CREDENTIALS_DIRECTORY" && name != "MAILQ_CONFIG" && name != "MAILQ_RELAY_PASSWORD" {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.CombinedOutput()
			if code := exitCode(err); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(string(out), n) {
					t.Errorf("output shows %q:\n%s", n, out)
				}
			}
		})
	}
}
