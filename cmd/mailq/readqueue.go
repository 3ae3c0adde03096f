package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mailq/config"
	"mailq/control"
	"mailq/control/server"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// Exit statuses of read-queue (mailqctl shows its standard error).
const (
	readQueueFailed = 1 // no configuration, no queue file, or it could not be opened
	readQueueLocked = 3 // a running daemon holds the file
)

// runReadQueue is `mailq read-queue`: mailqctl's way to read the queue of
// a stopped daemon (list, show, cat, stats, summary). It opens queue.db
// read-only and answers the control API on standard input and output until
// mailqctl closes them, so that mailqctl itself links no store (issue 13).
func runReadQueue(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailq read-queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file whose data_dir to read (default as for the daemon)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailq read-queue [--config FILE]\n"+
			"Serves the control API read-only from the queue file of a stopped daemon on standard input and output (mailqctl runs it).\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(config.Find(*configPath))
	if err != nil {
		fmt.Fprintf(stderr, "loading the configuration: %v\n", err)
		return readQueueFailed
	}
	if cfg.Queue.Postgres() {
		fmt.Fprintf(stderr, "the queue is in PostgreSQL ([queue] backend = \"postgres\"), not in a file: ask a running node\n")
		return readQueueFailed
	}
	path := filepath.Join(cfg.DataDir, "queue.db")
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "no queue file to read at %s: %v\n", path, err)
		return readQueueFailed
	}
	store, err := boltstore.OpenReadOnly(path, queue.Options{Retention: cfg.Retention.Duration})
	if errors.Is(err, boltstore.ErrLocked) {
		fmt.Fprintf(stderr, "a mailq daemon has the queue file %s open but its control socket does not answer: is control.socket the same in its configuration?\n", path)
		return readQueueLocked
	}
	if err != nil {
		fmt.Fprintf(stderr, "reading the queue file %s failed: %v\n", path, err)
		return readQueueFailed
	}
	defer store.Close()
	if _, err := fmt.Fprintln(os.Stdout, control.ReadQueueReady, path); err != nil {
		return readQueueFailed
	}
	server.ServeConn(store, control.PipeConn(os.Stdin, os.Stdout))
	return 0
}
