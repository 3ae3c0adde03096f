package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"mailq/control"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// readClient is the client for the commands that only read (list, show,
// cat, stats, summary). When the daemon does not answer on its socket
// because it is not running, they read the queue file itself, read-only,
// and say so on standard error. done releases the file.
func (a *app) readClient(ctx context.Context) (c *control.Client, done func(), err error) {
	c, err = a.client()
	if err != nil {
		return nil, nil, err
	}
	pingErr := c.Ping(ctx)
	if pingErr == nil || !errors.Is(pingErr, control.ErrUnreachable) ||
		errors.Is(pingErr, syscall.EACCES) || errors.Is(pingErr, syscall.EPERM) {
		// Up, or refused for a reason the queue file would not fix.
		return c, func() {}, nil
	}
	cfg, cerr := a.config()
	if cerr != nil {
		return nil, nil, pingErr
	}
	if cfg.Queue.Postgres() {
		// No local file to fall back on: the queue is in the database, and
		// every node's socket answers for all of it.
		return nil, nil, fmt.Errorf("%w; the queue is in PostgreSQL ([queue] backend = \"postgres\"): ask a running node (--socket), or start this one", pingErr)
	}
	path := filepath.Join(cfg.DataDir, "queue.db")
	if _, serr := os.Stat(path); serr != nil {
		return nil, nil, fmt.Errorf("%w; and no queue file to read at %s: %v", pingErr, path, serr)
	}
	store, err := boltstore.OpenReadOnly(path, queue.Options{Retention: cfg.Retention.Duration})
	if errors.Is(err, boltstore.ErrLocked) {
		return nil, nil, fmt.Errorf("%w; a mailq daemon has the queue file %s open but its control socket does not answer: is control.socket the same in its configuration?", pingErr, path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w; reading the queue file instead failed: %v", pingErr, err)
	}
	fmt.Fprintf(a.stderr, "mailqctl: mailq is not running; reading the queue file %s read-only (the queue as the daemon left it)\n", path)
	lc, closeLocal := control.NewLocalClient(store)
	return lc, func() { closeLocal(); store.Close() }, nil
}
