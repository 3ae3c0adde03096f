package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"mailq/config"
	"mailq/queue"
	"mailq/queue/pgstore"
)

// pgPollInterval bounds how late a node notices work another node made due
// when a NOTIFY was lost (pgstore.Options.PollInterval).
const pgPollInterval = time.Second

// openPostgres opens the queue in PostgreSQL ([queue] backend =
// "postgres"): it reads the DSN (a secret: never logged), connects,
// migrates the schema and takes back the leases this node left, while
// SIGTERM or SIGINT can still stop start-up.
func openPostgres(cfg *config.Config, signals <-chan os.Signal, log zerolog.Logger) (queue.Store, bool, error) {
	dsn, err := cfg.Queue.ReadDSN()
	if err != nil {
		return nil, false, err
	}
	opts := pgstore.Options{
		Options: storeJournal(queue.Options{
			Retention: cfg.Retention.Duration,
			OnPurged: func(id queue.ID) {
				log.Info().Str("queue_id", string(id)).Msg("removed: done and past retention")
			},
		}),
		Node:         cfg.Queue.NodeName,
		LeaseTime:    cfg.Queue.Lease.Duration,
		PollInterval: pgPollInterval,
	}
	log.Debug().Str("node", opts.Node).Msg("opening the queue in PostgreSQL")
	// Only Open uses ctx: cancelling it when start-up stops (or once Open
	// returned) ends a connection attempt in progress.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, stopped, err := openWatching(signals, log, func() (queue.Store, error) {
		s, err := pgstore.Open(ctx, dsn, opts)
		if err != nil {
			return nil, fmt.Errorf("queue in PostgreSQL ([queue] dsn): %w; check that the database runs and the DSN's host, database and user are right (mailq --check-config connects too)", err)
		}
		log.Info().Str("node", s.Node()).Int("schema_version", s.SchemaVersion()).Msg("queue in PostgreSQL open")
		return s, nil
	})
	return store, stopped, err
}

// describeQueue is where the queue lives, for the "ready" log line.
func describeQueue(cfg *config.Config, store queue.Store) string {
	if s, ok := store.(*pgstore.Store); ok {
		return fmt.Sprintf("postgres (node %s, schema version %d)", s.Node(), s.SchemaVersion())
	}
	return filepath.Join(cfg.DataDir, "queue.db")
}

// lockNode takes data_dir/node.lock for as long as the process runs. With
// bbolt the queue file's lock keeps a second daemon off the spool; with
// PostgreSQL nothing local would, yet the maildrop and the control socket
// are this node's alone.
func lockNode(dataDir string) (*os.File, error) {
	path := filepath.Join(dataDir, "node.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another mailq runs on data_dir %s (it holds %s); stop it first (two daemons must not share a node's maildrop and socket)", dataDir, path)
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	return f, nil
}

// checkConnectTimeout bounds --check-config's connection to the database.
const checkConnectTimeout = 15 * time.Second

// checkPostgres is --check-config's last step with backend = "postgres":
// connect, read the schema version, change nothing. It returns the exit
// status.
func checkPostgres(cfg *config.Config, stdout, stderr io.Writer) int {
	dsn, err := cfg.Queue.ReadDSN()
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkConnectTimeout)
	defer cancel()
	version, latest, err := pgstore.Probe(ctx, dsn)
	if err != nil {
		fmt.Fprintf(stderr, "mailq: [queue] backend = \"postgres\": %v\n", err)
		return 1
	}
	switch {
	case version == 0:
		fmt.Fprintf(stdout, "# queue: PostgreSQL reachable; no mailq schema yet: the first node to start creates version %d\n", latest)
	case version < latest:
		fmt.Fprintf(stdout, "# queue: PostgreSQL reachable; schema version %d, migrated to %d when this mailq starts\n", version, latest)
	default:
		fmt.Fprintf(stdout, "# queue: PostgreSQL reachable; schema version %d (current)\n", version)
	}
	return 0
}
