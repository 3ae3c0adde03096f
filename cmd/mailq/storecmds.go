package main

// The store subcommands (issue 17), run with the daemon stopped:
//
//	mailq check-store [--config FILE] [--data-dir DIR]
//	mailq salvage --from DAMAGED --to NEW

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mailq/config"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// storeCommands are dispatched on the first argument before the daemon's
// own flags are parsed.
var storeCommands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"check-store":   runCheckStore,
	"salvage":       runSalvage,
	"migrate-queue": runMigrateQueue, // migrate.go
	"read-queue":    runReadQueue,    // readqueue.go
}

func runCheckStore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailq check-store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file whose data_dir to check (default as for the daemon)")
	dataDir := fs.String("data-dir", "", "the data directory holding queue.db (overrides the configuration's data_dir)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailq check-store [--config FILE] [--data-dir DIR]\n"+
			"Checks the queue store of a stopped daemon read-only; exit 0 clean, 1 problems found.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mailq check-store: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	dir := *dataDir
	if dir == "" {
		cfg, err := config.Load(config.Find(*configPath))
		if err != nil {
			fmt.Fprintf(stderr, "mailq check-store: invalid configuration (or give --data-dir):\n%v\n", err)
			return 1
		}
		if cfg.Queue.Postgres() {
			fmt.Fprintf(stderr, "mailq check-store: checks a bbolt queue file, and this configuration's queue is in PostgreSQL ([queue] backend = \"postgres\"); "+
				"check-store needs the bbolt backend (give --data-dir to check an old queue.db); check the database with PostgreSQL's own tools\n")
			return 1
		}
		dir = cfg.DataDir
	}
	path := filepath.Join(dir, "queue.db")
	rep, err := boltstore.CheckFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "mailq check-store: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "store %s: checked in %v\n", path, rep.Elapsed.Round(1e6))
	if rep.Unreadable {
		fmt.Fprintf(stdout, "the store could not be read far enough to check its messages\n")
	} else {
		printCounts(stdout, rep)
	}
	if rep.OK() {
		fmt.Fprintf(stdout, "problems: 0\n")
		return 0
	}
	fmt.Fprintf(stdout, "problems: %d\n", len(rep.Problems))
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	fmt.Fprintf(stdout, "Copy what can be read into a new store with `mailq salvage --from %s --to NEW.db`.\n", path)
	return 1
}

func printCounts(stdout io.Writer, rep *boltstore.CheckReport) {
	fmt.Fprintf(stdout, "pages: %d reachable\n", rep.Pages)
	fmt.Fprintf(stdout, "messages: %d (queued %d, deferred %d, active %d, held %d, done %d)\n", rep.Messages,
		rep.ByStatus[queue.StatusQueued], rep.ByStatus[queue.StatusDeferred], rep.ByStatus[queue.StatusActive],
		rep.ByStatus[queue.StatusHeld], rep.ByStatus[queue.StatusDone])
	fmt.Fprintf(stdout, "body chunks: %d (%d bytes)\n", rep.Chunks, rep.BodyBytes)
	fmt.Fprintf(stdout, "index entries: schedule %d, live %d, finished %d\n", rep.Sched, rep.Live, rep.Finished)
	if len(rep.SetAside) > 0 {
		fmt.Fprintf(stdout, "set aside as damaged by an earlier start (see `mailqctl show`): %d: %s\n", len(rep.SetAside), joinIDs(rep.SetAside))
	}
}

func runSalvage(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailq salvage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the damaged queue.db (only read, never written)")
	to := fs.String("to", "", "the new store to create (must not exist)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailq salvage --from DAMAGED --to NEW\n"+
			"Copies every readable message into a new store; exit 0 all saved, 1 some lost or failed.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	rep, err := boltstore.Salvage(*from, *to)
	if rep != nil {
		fmt.Fprintf(stdout, "saved %d messages into %s; could not save %d\n", rep.Saved, *to, len(rep.Lost))
		for _, l := range rep.Lost {
			id := string(l.ID)
			if id == "" {
				id = "-"
			}
			rcpts := "no recipient readable"
			if len(l.Recipients) > 0 {
				rcpts = "recipients " + strings.Join(l.Recipients, ", ")
			}
			fmt.Fprintf(stdout, "  lost %s: %s (%s)\n", id, l.Reason, rcpts)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "mailq salvage: %v\n", err)
		return 1
	}
	if len(rep.Lost) > 0 {
		fmt.Fprintf(stdout, "Tell the senders of the lost messages; then stop mailq, move %s aside and put %s in its place.\n", *from, *to)
		return 1
	}
	fmt.Fprintf(stdout, "Stop mailq, move %s aside and put %s in its place.\n", *from, *to)
	return 0
}

// withThisCommand makes a damaged store's error name this executable in
// the commands it suggests: installed, the daemon is off PATH, where
// "mailq" is mailqctl's queue listing.
func withThisCommand(err error) error {
	var de *boltstore.DamagedError
	if errors.As(err, &de) {
		if exe, xerr := os.Executable(); xerr == nil {
			de.Command = exe
		}
	}
	return err
}

func joinIDs(ids []queue.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, " ")
}
