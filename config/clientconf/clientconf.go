// Package clientconf is what a local client (mailqctl, sendmail) reads of
// mailq's configuration: where the control socket and the maildrop are, the
// host name for default senders and which queue backend runs. It reads only
// those keys, so a program started once per message does not pay for
// decoding and validating the daemon's whole configuration, nor link what
// that needs (package config; docs/cli.md "mailqctl").
package clientconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// SystemPath is the configuration used when neither --config nor
// MAILQ_CONFIG names one and the file exists.
const SystemPath = "/etc/mailq/mailq.toml"

// The embedded defaults of these keys (docs/configuration.md); package
// config's defaults use the same constants.
const (
	DefaultSocket   = "./mailq-data/control.sock"
	DefaultMaildrop = "./mailq-data/maildrop"
)

// The installed layout's paths (systemd/mailq.toml, systemd/tmpfiles.d), used
// by a client that cannot read the configuration and finds no client file.
const (
	SystemSocket   = "/run/mailq/control.sock"
	SystemMaildrop = "/var/spool/mailq/maildrop"
)

// FileName is the world-readable file beside mailq.toml that tells clients
// where the socket and the maildrop are. It holds no secrets.
const FileName = "client.toml"

// Client is where a local client reaches the daemon.
type Client struct {
	Socket   string // the control socket
	Maildrop string // the maildrop directory (sendmail's fallback)
	Hostname string // "" = the system's host name
	// Postgres says the queue is in PostgreSQL ([queue] backend), so there
	// is no local queue file to read while the daemon is down.
	Postgres bool
	// Source says where these came from, for error messages: the
	// configuration file, the client file, or "built-in defaults".
	Source string
}

// Find picks the configuration file the way docs/configuration.md says both
// mailq and mailqctl do: the --config flag, then $MAILQ_CONFIG, then
// SystemPath when it exists, else "" (embedded defaults only).
func Find(flagPath string) string {
	return find(flagPath, os.Getenv("MAILQ_CONFIG"), SystemPath)
}

func find(flagPath, envPath, systemPath string) string {
	switch {
	case flagPath != "":
		return flagPath
	case envPath != "":
		return envPath
	}
	if _, err := os.Stat(systemPath); err == nil {
		return systemPath
	}
	return ""
}

// clientFile is the syntax of client.toml: the same keys as mailq.toml,
// and only those a client needs to find the daemon.
type clientFile struct {
	Hostname string `toml:"hostname"`
	Control  struct {
		Socket string `toml:"socket"`
	} `toml:"control"`
	Maildrop struct {
		Dir string `toml:"dir"`
	} `toml:"maildrop"`
}

// over is c with the keys f sets.
func (f clientFile) over(c Client) Client {
	if f.Control.Socket != "" {
		c.Socket = f.Control.Socket
	}
	if f.Maildrop.Dir != "" {
		c.Maildrop = f.Maildrop.Dir
	}
	c.Hostname = f.Hostname
	return c
}

// clientKeys are the keys of mailq.toml a client reads (the same names and
// meaning as there); every other key is the daemon's to decode and check.
type clientKeys struct {
	clientFile
	Queue struct {
		Backend string `toml:"backend"`
	} `toml:"queue"`
}

// Read reads the client's keys of the configuration at path over the
// embedded defaults; path "" means the defaults alone. The whole file must
// be valid TOML and the keys it reads valid; the rest of the file is checked
// by the daemon (`mailq --check-config`), not here. An unreadable file's error
// wraps the cause (fs.ErrPermission: see LoadFallback).
func Read(path string) (Client, error) {
	c := Client{Socket: DefaultSocket, Maildrop: DefaultMaildrop, Source: "embedded defaults"}
	if path == "" {
		return c, nil
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: cannot read %s: %w", path, err)
	}
	var k clientKeys
	md, err := toml.Decode(string(text), &k)
	if err != nil {
		return c, fmt.Errorf("%s: config: %w", path, err)
	}
	isDefined := md.IsDefined
	// The checks package config applies to these keys, in its words.
	bad := func(format string, a ...any) (Client, error) {
		return c, fmt.Errorf("%s: config: "+format, append([]any{path}, a...)...)
	}
	switch {
	case isDefined("hostname") && (k.Hostname == "" || strings.ContainsAny(k.Hostname, " \t\r\n")):
		return bad("key \"hostname\" must be a host name without spaces, got %q", k.Hostname)
	case isDefined("control", "socket") && k.Control.Socket == "":
		return bad("[control]: key \"socket\" must not be empty")
	case isDefined("maildrop", "dir") && k.Maildrop.Dir == "":
		return bad("[maildrop]: key \"dir\" must not be empty")
	case isDefined("queue", "backend") && k.Queue.Backend != "bbolt" && k.Queue.Backend != "postgres":
		return bad("[queue]: key \"backend\" must be \"bbolt\" or \"postgres\", got %q", k.Queue.Backend)
	}
	c = k.clientFile.over(c)
	c.Postgres, c.Source = k.Queue.Backend == "postgres", path
	return c, nil
}

// LoadFallback is what a client uses instead of the configuration at
// configPath when reading that file was refused (fs.ErrPermission): the
// client file beside it when there is one, else the installed layout's
// paths (SystemSocket, SystemMaildrop).
func LoadFallback(configPath string) (Client, error) {
	c := Client{Socket: SystemSocket, Maildrop: SystemMaildrop, Source: "built-in defaults"}
	path := filepath.Join(filepath.Dir(configPath), FileName)
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
	c = f.over(c)
	c.Source = path
	return c, nil
}
