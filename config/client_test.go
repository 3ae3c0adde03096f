package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadClient(t *testing.T) {
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
				if err := os.WriteFile(filepath.Join(dir, ClientFileName), []byte(c.clientFile), 0o644); err != nil {
					t.Fatal(err)
				}
				c.want.Source = filepath.Join(dir, ClientFileName)
			}
			got, err := LoadClient(filepath.Join(dir, "mailq.toml"))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("LoadClient = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestClientMismatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailq.toml")
	text := "[control]\nsocket = \"/run/other.sock\"\n[maildrop]\ndir = \"" + SystemMaildrop + "\"\n"
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := ClientMismatch(cfg)
	if len(got) != 1 || !strings.Contains(got[0], "/run/other.sock") || !strings.Contains(got[0], SystemSocket) {
		t.Errorf("mismatch = %q, want one naming both sockets", got)
	}
	// A world-readable configuration is read by clients directly.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := ClientMismatch(cfg); len(got) != 0 {
		t.Errorf("world-readable configuration: mismatch = %q, want none", got)
	}
}
