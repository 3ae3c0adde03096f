package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Queue is the [queue] table: where the queue lives. bbolt (the default)
// is a file in data_dir owned by one daemon; postgres is a database that
// several nodes share (docs/configuration.md "[queue]").
type Queue struct {
	Backend string `toml:"backend"` // "bbolt" (default) or "postgres"
	// The PostgreSQL connection string (libpq keyword/value or URI form) is
	// a secret: exactly one of these gives it when backend = "postgres".
	DSN      string   `toml:"dsn"`       // literal (warned about, masked when printed)
	DSNEnv   string   `toml:"dsn_env"`   // name of an environment variable holding it
	DSNFile  string   `toml:"dsn_file"`  // file holding it (one trailing newline stripped)
	NodeName string   `toml:"node_name"` // this node in leases and logs; default: the host name
	Lease    Duration `toml:"lease_time"`
}

// Queue backends.
const (
	BackendBolt     = "bbolt"
	BackendPostgres = "postgres"
)

// DefaultLeaseTime is [queue] lease_time's default.
const DefaultLeaseTime = 10 * time.Minute

// defaultMaxMXTries is max_mx_tries' default (config cannot import delivery).
const defaultMaxMXTries = 5

// DefaultQueue is the [queue] table's defaults.
func DefaultQueue() Queue {
	return Queue{Backend: BackendBolt, NodeName: defaultNodeName(), Lease: D(DefaultLeaseTime)}
}

// defaultNodeName is the kernel's host name, "localhost" if it has none.
func defaultNodeName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// Postgres reports whether the queue is in PostgreSQL.
func (q Queue) Postgres() bool { return q.Backend == BackendPostgres }

// ReadDSN returns the connection string from whichever of dsn, dsn_env and
// dsn_file is set, reading the variable or file now, in this process's
// environment. Its errors name the key, the variable or the file, never
// the connection string.
func (q Queue) ReadDSN() (string, error) {
	switch {
	case q.DSN != "":
		return q.DSN, nil
	case q.DSNEnv != "":
		v := os.Getenv(q.DSNEnv)
		if strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("config: [queue]: dsn_env: environment variable %s is not set or empty; set it to the PostgreSQL connection string (e.g. in the unit's EnvironmentFile=)", q.DSNEnv)
		}
		return v, nil
	case q.DSNFile != "":
		path := q.DSNFile
		if strings.Contains(path, "CREDENTIALS_DIRECTORY") {
			// As password_file: LoadCredential= pairs with
			// dsn_file = "$CREDENTIALS_DIRECTORY/pg" (systemd.exec(5)).
			dir := os.Getenv("CREDENTIALS_DIRECTORY")
			if dir == "" {
				return "", fmt.Errorf("config: [queue]: dsn_file: %s names $CREDENTIALS_DIRECTORY, which is not set: mailq is not running under systemd with LoadCredential= (or set the variable)", path)
			}
			path = strings.NewReplacer("${CREDENTIALS_DIRECTORY}", dir, "$CREDENTIALS_DIRECTORY", dir).Replace(path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("config: [queue]: dsn_file: cannot read the PostgreSQL connection string: %w (put it in that file, readable by the mailq user only)", err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("config: [queue]: dsn_file: %s is empty; put the PostgreSQL connection string in it", path)
		}
		return v, nil
	}
	return "", errors.New("config: [queue]: backend = \"postgres\" needs one of dsn_file, dsn_env or dsn")
}

// validateQueue checks [queue]: the backend, one DSN source for
// postgres, a node name, and a lease that outlives every attempt.
func (c *Config) validateQueue() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: [queue]: "+format, args...))
	}
	q := c.Queue
	sources := 0
	for _, s := range []string{q.DSN, q.DSNEnv, q.DSNFile} {
		if s != "" {
			sources++
		}
	}
	switch q.Backend {
	case BackendBolt:
		if sources > 0 {
			bad("keys \"dsn\", \"dsn_env\" and \"dsn_file\" need backend = \"postgres\" (the bbolt queue is data_dir/queue.db)")
		}
	case BackendPostgres:
		if sources != 1 {
			bad("backend = \"postgres\" needs exactly one of \"dsn_file\", \"dsn_env\" or \"dsn\", got %d", sources)
		}
	default:
		bad("key \"backend\" must be \"bbolt\" or \"postgres\", got %q", q.Backend)
	}
	if q.NodeName == "" || strings.ContainsAny(q.NodeName, " \t\r\n") {
		bad("key \"node_name\" must be a name without spaces (default: the host name), got %q", q.NodeName)
	}
	if q.Lease.Duration <= 0 {
		bad("key \"lease_time\" must be a positive duration, got %q", q.Lease.Duration.String())
	} else if route, stall := c.longestStall(); q.Postgres() && q.Lease.Duration <= stall {
		// Only nodes sharing a queue take each other's leases over; one
		// bbolt daemon never does, so its routes may be as slow as they like.
		bad("key \"lease_time\" (%s) must be longer than the longest attempt: route %q can wait %s without progress "+
			"(connectiontimeout × addresses tried, then timeout or writetimeout); another node would take the message over "+
			"while this one still delivers it. Raise lease_time or lower that route's timeouts",
			q.Lease.Duration, route, stall)
	}
	return errs
}

// longestStall is the longest an attempt on some route can go on without
// the server making progress: connecting (each address of an MX route in
// turn, up to max_mx_tries), then one wait for a reply or for a write to
// drain. Every byte of progress restarts the read and write timeouts, so
// this is the bound mailq's timeouts put on an attempt that is stuck; it
// names the route that has it.
func (c *Config) longestStall() (route string, stall time.Duration) {
	for i := range c.Routes {
		r := &c.Routes[i]
		connect, read, write := r.Timeouts()
		tries := 1
		if r.MX {
			tries = r.MaxMXTries
			if tries <= 0 {
				tries = defaultMaxMXTries // delivery.DefaultMXMaxTries
			}
		}
		if d := time.Duration(tries)*connect + max(read, write); d > stall {
			route, stall = r.Name, d
		}
	}
	return route, stall
}
