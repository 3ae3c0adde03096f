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
	secret := write("secret.toml", "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"127.0.0.1\"\npassword = \"hunter2-secret\"\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stdout+stderr
		never    []string
	}{
		{"example config is valid", []string{"--check-config", "--config", "../../config.example.toml"}, 0,
			[]string{"[[route]]", "[retry]", "********"}, []string{"change-me"}},
		{"embedded defaults", []string{"--check-config", "--config", write("empty.toml", "")}, 0,
			[]string{`listen = "127.0.0.1:2525"`, `host = "localhost"`}, nil},
		{"secret masked", []string{"--check-config", "--config", secret}, 0,
			[]string{"********"}, []string{"hunter2-secret"}},
		{"unknown route key", []string{"--check-config", "--config", write("bad.toml", "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"h\"\nprot = 25\n")}, 1,
			[]string{`route "relay"`, `"prot"`}, nil},
		{"unknown section key", []string{"--check-config", "--config", write("bad2.toml", "[retry]\ninital = \"1m\"\n")}, 1,
			[]string{"[retry]", `"inital"`}, nil},
		{"missing file", []string{"--check-config", "--config", filepath.Join(dir, "nope.toml")}, 1,
			[]string{"nope.toml"}, nil},
		{"version", []string{"--version"}, 0, []string{"mailq "}, nil},
		{"stray argument", []string{"start"}, 2, []string{"unexpected argument"}, nil},
	}
	bin := buildMailq(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), "MAILQ_CONFIG=")
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
