package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailq/config/clientconf"
)

func TestClientMismatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailq.toml")
	text := "[control]\nsocket = \"/run/other.sock\"\n[maildrop]\ndir = \"" + clientconf.SystemMaildrop + "\"\n"
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := ClientMismatch(cfg)
	if len(got) != 1 || !strings.Contains(got[0], "/run/other.sock") || !strings.Contains(got[0], clientconf.SystemSocket) {
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

// TestClientconfReadsWhatLoadReads: what a client reads with package
// clientconf (only its keys) is what the daemon's Load makes of the same
// file, for the shipped configurations and for each client key set or
// wrong; where Load refuses one of those keys, clientconf refuses it too.
// (Keys a client does not read are the daemon's to check.)
func TestClientconfReadsWhatLoadReads(t *testing.T) {
	files := map[string]string{}
	for _, p := range []string{"../config.example.toml", "../systemd/mailq.toml"} {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = string(text)
	}
	for name, text := range map[string]string{
		"empty":               "",
		"all client keys":     "hostname = \"h.test\"\n[control]\nsocket = \"/s.sock\"\n[maildrop]\ndir = \"/md\"\n",
		"postgres":            "[queue]\nbackend = \"postgres\"\ndsn_env = \"X\"\n",
		"bbolt":               "[queue]\nbackend = \"bbolt\"\n",
		"hostname with space": "hostname = \"a b\"\n",
		"empty hostname":      "hostname = \"\"\n",
		"empty socket":        "[control]\nsocket = \"\"\n",
		"empty maildrop":      "[maildrop]\ndir = \"\"\n",
		"unknown backend":     "[queue]\nbackend = \"mysql\"\n",
		"socket not a string": "[control]\nsocket = 3\n",
		"bad TOML":            "[control\n",
	} {
		files[name] = text
	}
	for name, text := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mailq.toml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, loadErr := Load(path)
			got, readErr := clientconf.Read(path)
			if loadErr != nil {
				// Every case here that Load refuses is wrong in a client key
				// or in its syntax.
				if readErr == nil {
					t.Fatalf("Load refuses it (%v) but clientconf.Read accepts it: %+v", loadErr, got)
				}
				return
			}
			if readErr != nil {
				t.Fatalf("Load accepts it but clientconf.Read says %v", readErr)
			}
			want := ClientOf(cfg)
			if got.Hostname == "" {
				got.Hostname = defaultHostname() // "" is the system's name, as Load's default
			}
			if got != want {
				t.Errorf("clientconf.Read = %+v, Load gives %+v", got, want)
			}
		})
	}
}
