package config

// This file is what a local client (sendmail, mailqctl) needs to find the
// daemon when it may not read the daemon's configuration: mailq.toml may hold
// secrets and is 0640 root:mailq when installed, yet every local user must be
// able to run sendmail (docs/maildrop.md "Who may submit").

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// The installed layout's paths (systemd/mailq.toml, systemd/tmpfiles.d), used
// by a client that cannot read the configuration and finds no client file.
const (
	SystemSocket   = "/run/mailq/control.sock"
	SystemMaildrop = "/var/spool/mailq/maildrop"
)

// ClientFileName is the world-readable file beside mailq.toml that tells
// clients where the socket and the maildrop are. It holds no secrets.
const ClientFileName = "client.toml"

// Client is where a local client reaches the daemon.
type Client struct {
	Socket   string // the control socket
	Maildrop string // the maildrop directory (sendmail's fallback)
	Hostname string // "" = the system's host name
	// Source says where these came from, for error messages: the
	// configuration file, the client file, or "built-in defaults".
	Source string
}

// clientFile is the syntax of client.toml: the same keys as mailq.toml, and
// only those a client needs.
type clientFile struct {
	Hostname string `toml:"hostname"`
	Control  struct {
		Socket string `toml:"socket"`
	} `toml:"control"`
	Maildrop struct {
		Dir string `toml:"dir"`
	} `toml:"maildrop"`
}

// ClientOf returns the client view of a loaded configuration.
func ClientOf(cfg *Config) Client {
	src := cfg.Path
	if src == "" {
		src = "embedded defaults"
	}
	return Client{Socket: cfg.Control.Socket, Maildrop: cfg.Maildrop.Dir, Hostname: cfg.Hostname, Source: src}
}

// LoadClient is what a client uses instead of the configuration at
// configPath when reading that file was refused (fs.ErrPermission): the
// client file beside it when there is one, else the installed layout's
// paths (SystemSocket, SystemMaildrop).
func LoadClient(configPath string) (Client, error) {
	c := Client{Socket: SystemSocket, Maildrop: SystemMaildrop, Source: "built-in defaults"}
	path := filepath.Join(filepath.Dir(configPath), ClientFileName)
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config: cannot read %s: %w (it must be readable by every user: chmod 0644)", path, err)
	}
	var f clientFile
	md, err := toml.Decode(string(text), &f)
	if err != nil {
		return c, fmt.Errorf("config: %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return c, fmt.Errorf("config: %s: key %q is not a client setting (only hostname, [control] socket and [maildrop] dir belong here; secrets never do)", path, undecoded[0].String())
	}
	if f.Control.Socket != "" {
		c.Socket = f.Control.Socket
	}
	if f.Maildrop.Dir != "" {
		c.Maildrop = f.Maildrop.Dir
	}
	c.Hostname = f.Hostname
	c.Source = path
	return c, nil
}

// ClientMismatch compares what a client that cannot read cfg would use with
// cfg itself, and describes each difference; the daemon logs them at start,
// because sendmail would otherwise drop mail where nobody picks it up. It
// returns nothing when cfg was not loaded from a file or when every user
// may read that file (clients then read it directly).
func ClientMismatch(cfg *Config) []string {
	if cfg.Path == "" {
		return nil
	}
	fi, err := os.Stat(cfg.Path)
	if err != nil || fi.Mode().Perm()&0o004 != 0 {
		return nil
	}
	c, err := LoadClient(cfg.Path)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	if c.Socket != cfg.Control.Socket {
		out = append(out, fmt.Sprintf("[control] socket is %s but clients that cannot read %s use %s (from %s)", cfg.Control.Socket, cfg.Path, c.Socket, c.Source))
	}
	if c.Maildrop != cfg.Maildrop.Dir {
		out = append(out, fmt.Sprintf("[maildrop] dir is %s but clients that cannot read %s use %s (from %s)", cfg.Maildrop.Dir, cfg.Path, c.Maildrop, c.Source))
	}
	return out
}
