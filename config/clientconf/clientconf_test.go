package clientconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindOrder(t *testing.T) {
	dir := t.TempDir()
	system := filepath.Join(dir, "mailq.toml")
	tests := []struct {
		name         string
		flag, env    string
		systemExists bool
		want         string
	}{
		{"flag wins", "/a.toml", "/b.toml", true, "/a.toml"},
		{"env when no flag", "", "/b.toml", true, "/b.toml"},
		{"system file when it exists", "", "", true, system},
		{"defaults otherwise", "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(system)
			if tt.systemExists {
				if err := os.WriteFile(system, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := find(tt.flag, tt.env, system); got != tt.want {
				t.Errorf("find(%q, %q) = %q, want %q", tt.flag, tt.env, got, tt.want)
			}
		})
	}
	t.Setenv("MAILQ_CONFIG", "/from/env.toml")
	if got := Find(""); got != "/from/env.toml" {
		t.Errorf("Find with MAILQ_CONFIG = %q, want /from/env.toml", got)
	}
	if got := Find("/flag.toml"); got != "/flag.toml" {
		t.Errorf("Find with a flag = %q, want /flag.toml", got)
	}
}

func TestLoadFallback(t *testing.T) {
	cases := []struct {
		name       string
		clientFile string // "" = none
		want       Client
		wantErr    string
	}{
		{"no client file: the installed layout's paths", "",
			Client{Socket: SystemSocket, Maildrop: SystemMaildrop, Source: "built-in defaults"}, ""},
		{"client file overrides", "hostname = \"h.test\"\n[control]\nsocket = \"/s\"\n[maildrop]\ndir = \"/m\"\n",
			Client{Socket: "/s", Maildrop: "/m", Hostname: "h.test"}, ""},
		{"client file sets only the maildrop", "[maildrop]\ndir = \"/m\"\n",
			Client{Socket: SystemSocket, Maildrop: "/m"}, ""},
		{"a secret is refused", "[[route]]\nname = \"x\"\npassword = \"p\"\n", Client{}, "not a client setting"},
		{"bad TOML", "[control\n", Client{}, "client.toml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.clientFile != "" {
				if err := os.WriteFile(filepath.Join(dir, FileName), []byte(c.clientFile), 0o644); err != nil {
					t.Fatal(err)
				}
				c.want.Source = filepath.Join(dir, FileName)
			}
			got, err := LoadFallback(filepath.Join(dir, "mailq.toml"))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("LoadFallback = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
