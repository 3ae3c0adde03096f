package config

// This file relates the configuration to what local clients (sendmail,
// mailqctl) read of it: package clientconf, and client.toml for those that
// may not read mailq.toml (0640 root:mailq when installed, since it may hold
// secrets; docs/maildrop.md "Who may submit").

import (
	"fmt"
	"os"

	"mailq/config/clientconf"
)

// ClientOf returns the client view of a loaded configuration.
func ClientOf(cfg *Config) clientconf.Client {
	src := cfg.Path
	if src == "" {
		src = "embedded defaults"
	}
	return clientconf.Client{Socket: cfg.Control.Socket, Maildrop: cfg.Maildrop.Dir, Hostname: cfg.Hostname, Postgres: cfg.Queue.Postgres(), Source: src}
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
	c, err := clientconf.LoadFallback(cfg.Path)
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
