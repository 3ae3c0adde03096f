package main

// mailq migrate-queue --from /var/lib/mailq/queue.db (issue 14): moving a
// bbolt queue into PostgreSQL, with every daemon that uses either stopped.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"mailq/config"
	"mailq/queue"
	"mailq/queue/boltstore"
	"mailq/queue/pgstore"
)

func runMigrateQueue(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailq migrate-queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration whose [queue] names the PostgreSQL database (default as for the daemon)")
	from := fs.String("from", "", "the bbolt queue.db to copy from (only read, never written)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailq migrate-queue [--config FILE] --from /var/lib/mailq/queue.db\n"+
			"Copies every live message of a stopped daemon's bbolt queue, with its state, history and body, into the\n"+
			"PostgreSQL queue of [queue]; a rerun copies nothing twice. Exit 0 all copied, 1 not.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mailq migrate-queue: "+format+"\n", a...)
		return 1
	}
	cfg, err := config.Load(config.Find(*configPath))
	if err != nil {
		return fail("invalid configuration:\n%v", err)
	}
	if !cfg.Queue.Postgres() {
		return fail("the configuration's queue is bbolt; set [queue] backend = \"postgres\" and dsn_file (or dsn_env, dsn) to the database to copy into")
	}
	dsn, err := cfg.Queue.ReadDSN()
	if err != nil {
		return fail("%v", err)
	}
	src, err := boltstore.OpenReadOnly(*from, queue.Options{Retention: cfg.Retention.Duration})
	if errors.Is(err, boltstore.ErrLocked) {
		return fail("%v: stop the daemon first (the queue must not change while it is copied)", err)
	}
	if err != nil {
		return fail("%v", err)
	}
	defer src.Close()
	// A node name of its own: opening takes back the leases its node left,
	// and a running node's must stay its own.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	dst, err := pgstore.Open(ctx, dsn, pgstore.Options{
		Options:   queue.Options{Retention: cfg.Retention.Duration},
		Node:      cfg.Queue.NodeName + "/migrate-queue",
		LeaseTime: cfg.Queue.Lease.Duration,
	})
	cancel()
	if err != nil {
		return fail("%v", err)
	}
	defer dst.Close()

	var ids []queue.ID
	if err := src.List(queue.Filter{}, func(m *queue.Message) error { // every live message, in id order
		ids = append(ids, m.ID)
		return nil
	}); err != nil {
		return fail("reading %s: %v", *from, err)
	}
	stats, err := src.Stats()
	if err != nil {
		return fail("reading %s: %v", *from, err)
	}
	fmt.Fprintf(stdout, "copying %d live messages from %s into PostgreSQL\n", len(ids), *from)
	moved, skipped, failed := 0, 0, 0
	for _, id := range ids {
		status, ok, err := migrateOne(src, dst, id)
		switch {
		case errors.Is(err, errIDTaken):
			fmt.Fprintf(stdout, "  FAILED %s: %v\n", id, err)
			return fail("stopped: %v", err)
		case err != nil:
			failed++
			fmt.Fprintf(stdout, "  FAILED %s: %v\n", id, err)
		case ok:
			moved++
			fmt.Fprintf(stdout, "  moved %s (%s)\n", id, status)
		default:
			skipped++
			fmt.Fprintf(stdout, "  skipped %s: already in the database\n", id)
		}
	}
	fmt.Fprintf(stdout, "moved %d, skipped %d already there, failed %d; not copied: %d done messages (their history stays in %s)\n",
		moved, skipped, failed, stats.Done, *from)
	if failed > 0 {
		fmt.Fprintf(stdout, "Run the same command again to copy the failed ones: what was copied is not copied twice.\n")
		return 1
	}
	fmt.Fprintf(stdout, "Start mailq with this configuration. Keep %s aside, but never start a daemon on it again: it would deliver its mail a second time.\n", *from)
	return 0
}

// migrateOne copies one message with its body. A message that was in
// flight when the daemon stopped (active: its attempt is recorded as
// interrupted already) arrives with its unfinished recipients due now, as
// the bbolt store's recovery at open would have made them.
func migrateOne(src *boltstore.Store, dst *pgstore.Store, id queue.ID) (queue.Status, bool, error) {
	m, err := src.Get(id)
	if errors.Is(err, queue.ErrNotFound) {
		return "", false, fmt.Errorf("gone from the source while copying: is a daemon running on it?")
	}
	if err != nil {
		return "", false, err
	}
	status := m.Status
	if status == queue.StatusActive {
		now := time.Now()
		for i := range m.Recipients {
			if rc := &m.Recipients[i]; !rc.State.Done() {
				rc.NextAttempt = now
				if rc.State == queue.Pending {
					rc.State = queue.Deferred
				}
			}
		}
	}
	body, err := src.Body(id)
	if err != nil {
		return "", false, fmt.Errorf("body: %w", err)
	}
	defer body.Close()
	ok, err := dst.Import(m, body)
	if err != nil || ok {
		return status, ok, err
	}
	// Import leaves alone any message with this id. The same message
	// (copied by an earlier run) is fine; another one means the database
	// took mail of its own first, and its ids and the file's collide.
	there, err := dst.Get(id)
	if err != nil {
		return status, false, err
	}
	if !there.Arrival.Equal(m.Arrival) || there.Sender != m.Sender {
		return status, false, fmt.Errorf("%w %s (arrived %s from <%s>, not %s from <%s>); migrate into an empty database, before any node takes mail",
			errIDTaken, id, there.Arrival.UTC().Format(time.RFC3339), there.Sender, m.Arrival.UTC().Format(time.RFC3339), m.Sender)
	}
	return status, false, nil
}

// errIDTaken: the database holds a different message under an id of the file.
var errIDTaken = errors.New("the database holds a different message under the id")
