package boltstore

// What Open does before it trusts a file (issue 17): a damaged store ends
// start-up with an error that says so, where, and what to run, instead of
// a panic, a SIGBUS, or a silent fresh start on an empty file.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is wrapped by every error that refuses a store for what its
// file holds (or lacks); errors.Is(err, ErrDamaged) tells it apart from
// a permission or lock problem.
var ErrDamaged = errors.New("queue store is damaged")

// DamagedError says which store cannot be used and why.
type DamagedError struct {
	Path   string
	Reason string
	// Command is how to invoke the daemon's binary in the advice ("mailq"
	// when empty); the daemon sets its own path.
	Command string
}

func (e *DamagedError) Error() string {
	dir := filepath.Dir(e.Path)
	cmd := e.Command
	if cmd == "" {
		cmd = "mailq"
	}
	return fmt.Sprintf("queue: the queue store %s is damaged or not a mailq queue: %s. "+
		"mailq changed nothing and will not start on it. "+
		"See what is wrong with `%s check-store --data-dir %s`; "+
		"copy every message that can still be read into a new store with `%s salvage --from %s --to %s`, "+
		"then move the damaged file aside and the new one into its place (README, \"A damaged store\")",
		e.Path, e.Reason, cmd, dir, cmd, e.Path, filepath.Join(dir, "salvaged.db"))
}

func (e *DamagedError) Unwrap() error { return ErrDamaged }

func damaged(path, format string, args ...any) error {
	return &DamagedError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// markerPath is the file written beside a store once it has been opened:
// from then on a missing or empty store file is a loss, not a first start.
func markerPath(path string) string { return path + ".created" }

// precheck refuses, before bbolt maps it, a store file that would make
// bbolt panic or fault, or that stands for a lost queue. clean reports a
// file exactly as the last clean Close left it.
func precheck(path string) (clean bool, err error) {
	_, markerErr := os.Stat(markerPath(path))
	hadQueue := markerErr == nil
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if hadQueue {
			return false, damaged(path, "the file is missing, but %s shows a queue was created here before (restore it from a backup, or remove the marker to start an empty queue)", markerPath(path))
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("queue: inspect %s: %w", path, err)
	case !info.Mode().IsRegular():
		return false, damaged(path, "it is not a regular file (%s)", info.Mode().Type())
	case info.Size() == 0:
		if hadQueue {
			return false, damaged(path, "the file is empty (0 bytes), but %s shows a queue was created here before (restore it from a backup, or remove both files to start an empty queue)", markerPath(path))
		}
		return false, nil // bbolt initialises an empty file: a first start cut short
	}
	// A running mailq writes the file as we read it: only a file nobody
	// holds is judged (bbolt locks it with flock too).
	unlock, err := lockShared(path)
	if err != nil {
		return false, err
	}
	defer unlock()
	var problems []string
	if clean = closedCleanly(path, info); clean {
		// As the last clean stop left it: the header and length suffice,
		// and start-up stays independent of the queue's size (issue 18).
		f, err := os.Open(path)
		if err != nil {
			return false, fmt.Errorf("queue: read %s to check it: %w", path, err)
		}
		_, problem := headerProblem(f, info.Size())
		f.Close()
		if problem != "" {
			problems = []string{problem}
		}
	} else if problems, _, err = walkFile(path, 1); err != nil {
		return false, fmt.Errorf("queue: read %s to check it: %w", path, err)
	}
	if len(problems) > 0 {
		return false, damaged(path, "%s", problems[0])
	}
	// From here on the file may change: only the next clean Close vouches
	// for it again.
	if err := os.Remove(cleanPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("queue: remove %s: %w", cleanPath(path), err)
	}
	return clean, nil
}

// cleanPath is written by Close once the file is closed, naming its size
// and modification time. An Open that finds both unchanged skips the walk
// of every page (seconds at 100k messages, a minute at 1M) and checks the
// meta pages and the length only; after a crash, a copy, an edit or a
// restored backup the stamp does not match and the whole walk runs.
func cleanPath(path string) string { return path + ".clean" }

func cleanStamp(info fs.FileInfo) string {
	return fmt.Sprintf("%d %d\n", info.Size(), info.ModTime().UnixNano())
}

func closedCleanly(path string, info fs.FileInfo) bool {
	b, err := os.ReadFile(cleanPath(path))
	return err == nil && string(b) == cleanStamp(info)
}

// writeClean records a clean stop of the file at path (see cleanPath).
// Failing to write it costs only a full walk at the next Open.
func writeClean(path string) {
	if info, err := os.Stat(path); err == nil {
		os.WriteFile(cleanPath(path), []byte(cleanStamp(info)), 0o600)
	}
}

// lockShared takes a shared flock on path, waiting up to 2 s like Open.
func lockShared(path string) (unlock func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("queue: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, openError(path, berrors.ErrTimeout)
		}
	}
}

// catchOpenPanic turns a panic or memory fault on the goroutine running
// Open into a DamagedError, closing *db when it was opened. The walk in
// precheck should leave bbolt nothing to trip on; this is the backstop.
// Use as: defer catchOpenPanic(path, &db, &err)().
func catchOpenPanic(path string, db **bolt.DB, err *error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if *db != nil {
				(*db).Close()
			}
			*err = damaged(path, "reading it failed: %v", r)
		}
	}
}

// openError explains bolt.Open's errors: damage, or another mailq.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("queue: open %s: file is locked by another process (is another mailq running?)", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return damaged(path, "bbolt refuses it: %v", err)
	}
	return fmt.Errorf("queue: open %s: %w", path, err)
}

// The mailq bucket says that a bbolt file is a mailq queue and in which
// schema; a newer mailq raises schemaVersion when it changes the layout.
var (
	bucketFormat = []byte("mailq")
	keyFormat    = []byte("format")
	keySchema    = []byte("schema")
	formatName   = []byte("mailq queue")
)

const schemaVersion = 1

// checkFormat refuses a bbolt file that is not a mailq queue or was
// written in a newer schema, and labels a new (or older, unlabelled) one.
func checkFormat(db *bolt.DB, path string) error {
	var label bool
	err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketFormat); b != nil {
			if got := b.Get(keyFormat); string(got) != string(formatName) {
				return damaged(path, "its label says it is a %q, not a %q", got, formatName)
			}
			v, err := strconv.Atoi(string(b.Get(keySchema)))
			if err != nil {
				return damaged(path, "its schema version %q is not a number", b.Get(keySchema))
			}
			if v > schemaVersion {
				return damaged(path, "it was written by a newer mailq (schema version %d; this mailq reads up to %d): run that newer mailq on it", v, schemaVersion)
			}
			return nil
		}
		var names []string
		tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, strconv.Quote(string(name)))
			return nil
		})
		// No buckets: new. A msgs bucket: a queue from before labels.
		if len(names) > 0 && tx.Bucket(bucketMsgs) == nil {
			return damaged(path, "it is another program's bbolt database (buckets %s, no mailq queue in it)", strings.Join(names, ", "))
		}
		label = true
		return nil
	})
	if err != nil || !label {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketFormat)
		if err != nil {
			return fmt.Errorf("queue: label %s as a mailq queue: %w", path, err)
		}
		if err := b.Put(keyFormat, formatName); err != nil {
			return err
		}
		return b.Put(keySchema, []byte(strconv.Itoa(schemaVersion)))
	})
}

// writeMarker records, once, that a queue lives at path (see markerPath).
func writeMarker(path string) error {
	m := markerPath(path)
	if _, err := os.Stat(m); err == nil {
		return nil
	}
	text := fmt.Sprintf("mailq created the queue %s here on %s.\n"+
		"While this file exists, a missing or empty %s is an error, not a fresh start.\n",
		filepath.Base(path), time.Now().UTC().Format(time.RFC3339), filepath.Base(path))
	if err := os.WriteFile(m, []byte(text), 0o600); err != nil {
		return fmt.Errorf("queue: write %s: %w", m, err)
	}
	return syncDir(filepath.Dir(path))
}
