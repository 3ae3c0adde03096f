// Package maildrop takes the files local programs drop into the maildrop
// directory (sendmail when the daemon is down; docs/maildrop.md) into the
// queue: it watches new/, waits for each file to settle, enqueues it and
// moves what it cannot read to failed/.
package maildrop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
	"mailq/intake"
	"mailq/intake/arrival"
	"mailq/metrics"
	"mailq/queue"
)

// Options configures New.
type Options struct {
	Dir            string      // the maildrop; tmp/, new/ and failed/ are created inside
	Store          queue.Store // where taken messages go
	MaxMessageSize int64       // bytes of message (after the envelope lines); <= 0 = no limit
	MaxRecipients  int         // 0 = DefaultMaxRecipients
	Hostname       string      // for the Received: line
	PollInterval   time.Duration
	// Settle is how long a file in new/ must go unmodified before it is
	// taken, so a writer that writes straight into new/ (not through tmp/)
	// is not caught half-way; default 1s.
	Settle time.Duration
	Logger zerolog.Logger
	Now    func() time.Time // default time.Now
}

// Watcher takes files out of <dir>/new/ into the queue (docs/maildrop.md). Files are processed one at a time by Run's goroutine.
type Watcher struct {
	opts Options
	// enqueuedNotRemoved holds files already stored in the queue whose
	// removal failed; they are never enqueued again while we run.
	enqueuedNotRemoved map[string]bool
	// settling holds files modified less than Settle ago, by when to look again.
	settling map[string]time.Time
}

// New returns a maildrop pickup; Run starts it.
func New(opts Options) *Watcher {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Settle <= 0 {
		opts.Settle = time.Second
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	return &Watcher{opts: opts, enqueuedNotRemoved: map[string]bool{}, settling: map[string]time.Time{}}
}

// Directory modes, as systemd/tmpfiles.d/mailq.conf makes them
// (docs/maildrop.md "Who may submit"): every local user may create files in
// tmp/ and rename them into new/, but not list them (so nobody learns
// another's file names), nor remove or replace another's file (sticky);
// files get the directories' group (setgid), through which the daemon reads
// them. failed/ is for the daemon and its group, the operators.
const (
	modeMaildropDir = 0o755
	modeDropDir     = 0o733 | os.ModeSetgid | os.ModeSticky
	modeFailedDir   = 0o750
	modeFailedFile  = 0o640
)

// Run creates the directories, takes the files already in new/, then every
// file that arrives (inotify plus a scan every PollInterval, so nothing is
// missed) until ctx is done. It returns nil when ctx ends, or an error if the
// maildrop cannot be set up.
func (m *Watcher) Run(ctx context.Context) error {
	if err := m.MakeDirs(); err != nil {
		return err
	}
	newDir := filepath.Join(m.opts.Dir, "new")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("maildrop: inotify: %w", err)
	}
	defer w.Close()
	if err := w.Add(newDir); err != nil {
		return fmt.Errorf("maildrop: watch %s: %w", newDir, err)
	}
	// Watch first, then scan: a file renamed in between is seen by both,
	// and the second sight finds it gone.
	m.scan(ctx)
	tick := time.NewTicker(m.opts.PollInterval)
	defer tick.Stop()
	settled := time.NewTimer(time.Hour)
	defer settled.Stop()
	for {
		settled.Reset(m.nextSettled())
		select {
		case <-settled.C:
			m.takeSettled(ctx)
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// IN_CREATE, IN_MOVED_TO and IN_MODIFY: take checks that the
			// file has settled.
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) {
				m.take(ctx, filepath.Base(ev.Name))
			}
		case err, ok := <-w.Errors:
			if ok {
				// Overflow or similar: the periodic scan catches up.
				m.opts.Logger.Warn().Err(err).Str("dir", newDir).Msg("maildrop watch error; relying on the periodic scan")
				m.scan(ctx)
			}
		case <-tick.C:
			m.scan(ctx)
		}
	}
}

// MakeDirs creates the maildrop and its tmp/, new/ and failed/ when missing.
// Run does it too; the daemon calls it before it reports ready, so a writer
// that waits for "ready" finds the directories there.
func (m *Watcher) MakeDirs() error {
	if err := os.MkdirAll(m.opts.Dir, modeMaildropDir); err != nil {
		return fmt.Errorf("maildrop: create %s: %w", m.opts.Dir, err)
	}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"tmp", modeDropDir}, {"new", modeDropDir}, {"failed", modeFailedDir}} {
		p := filepath.Join(m.opts.Dir, d.name)
		// mkdir with the permission bits only: systemd's RestrictSUIDSGID=
		// refuses any mkdir(2) that asks for setgid, even of a directory
		// that exists (the seccomp filter looks at the arguments).
		if err := os.Mkdir(p, d.mode.Perm()); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("maildrop: create %s: %w", p, err)
		} else if err == nil {
			// Mkdir is subject to the umask; set the intended mode once,
			// on creation only, so an operator's later chmod is kept.
			if err := m.chmodDropDir(p, d.mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// chmodDropDir sets a maildrop directory's mode. Where setgid is refused
// (RestrictSUIDSGID=, when the daemon makes the maildrop itself rather than
// systemd-tmpfiles), the directory is made without it and a warning says
// what that costs.
func (m *Watcher) chmodDropDir(p string, mode os.FileMode) error {
	err := os.Chmod(p, mode)
	if err != nil && mode&os.ModeSetgid != 0 && errors.Is(err, syscall.EPERM) {
		if err = os.Chmod(p, mode&^os.ModeSetgid); err == nil {
			m.opts.Logger.Warn().Str("dir", p).Msg("maildrop: cannot make the directory setgid; files of users outside the daemon's groups will be unreadable to it: create the maildrop with systemd-tmpfiles (tmpfiles.d/mailq.conf)")
		}
	}
	if err != nil {
		return fmt.Errorf("maildrop: chmod %s: %w", p, err)
	}
	return nil
}

// scan takes every file in new/, in name order.
func (m *Watcher) scan(ctx context.Context) {
	newDir := filepath.Join(m.opts.Dir, "new")
	f, err := os.Open(newDir)
	if err != nil {
		m.opts.Logger.Error().Err(err).Str("dir", newDir).Msg("maildrop: cannot read new/")
		return
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		m.opts.Logger.Error().Err(err).Str("dir", newDir).Msg("maildrop: cannot read new/")
	}
	for _, n := range names {
		if ctx.Err() != nil {
			return
		}
		m.take(ctx, n)
	}
}

// take stores one file in the queue and removes it, or moves it to failed/.
func (m *Watcher) take(ctx context.Context, name string) {
	if m.enqueuedNotRemoved[name] {
		m.removeTaken(name)
		return
	}
	path := filepath.Join(m.opts.Dir, "new", name)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && !renamedAfterWrite(fi) {
		if due := fi.ModTime().Add(m.opts.Settle); time.Now().Before(due) {
			m.settling[name] = due // still being written, perhaps
			return
		}
	}
	delete(m.settling, name)
	id, err := m.enqueueFile(path, name)
	switch {
	case err == nil:
		metrics.Enqueued.WithLabelValues("maildrop").Inc()
		m.opts.Logger.Debug().Str("queue_id", string(id)).Str("file", name).Msg("maildrop file taken")
		m.removeTaken(name)
	case errors.Is(err, os.ErrNotExist):
		// Already taken (scan and inotify both saw it), or removed by its writer.
	case isBadFile(err):
		m.fail(name, err)
	default:
		// The store could not take it (closed, disk full): leave it in new/
		// for the next scan; never drop or fail a good file for our fault.
		if ctx.Err() == nil {
			m.opts.Logger.Error().Err(err).Str("file", name).Msg("maildrop: cannot store the file now; will retry")
		}
	}
}

// renamedAfterWrite reports whether the inode changed after its last
// write: a rename into new/ sets ctime, a write sets mtime and ctime alike.
// Such a file is complete (written in tmp/ and moved, as writers should)
// and is taken without waiting for the settle time.
func renamedAfterWrite(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return time.Unix(st.Ctim.Unix()).After(fi.ModTime())
}

// nextSettled is how long until the first settling file is due.
func (m *Watcher) nextSettled() time.Duration {
	next := time.Hour
	for _, due := range m.settling {
		next = min(next, time.Until(due))
	}
	return max(next, time.Millisecond)
}

// takeSettled looks again at the settling files that are due.
func (m *Watcher) takeSettled(ctx context.Context) {
	now := time.Now()
	for name, due := range m.settling {
		if !now.Before(due) && ctx.Err() == nil {
			m.take(ctx, name) // takes it, or puts it back if modified since
		}
	}
}

func (m *Watcher) removeTaken(name string) {
	path := filepath.Join(m.opts.Dir, "new", name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.enqueuedNotRemoved[name] = true
		m.opts.Logger.Error().Err(err).Str("file", name).Msg("maildrop: file is queued but cannot be removed; fix the permissions of new/")
		return
	}
	delete(m.enqueuedNotRemoved, name)
}

// badFileError marks errors caused by the file itself: it goes to failed/.
type badFileError struct{ err error }

func (e *badFileError) Error() string { return e.err.Error() }
func (e *badFileError) Unwrap() error { return e.err }

func bad(err error) error { return &badFileError{err} }

func isBadFile(err error) bool {
	var b *badFileError
	return errors.As(err, &b)
}

// enqueueFile parses, validates and stores one file. Errors caused by the
// file are *badFileError; store errors are returned as they are.
func (m *Watcher) enqueueFile(path, name string) (queue.ID, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return "", bad(fmt.Errorf("cannot stat the file: %w", err))
	}
	if !fi.Mode().IsRegular() {
		return "", bad(fmt.Errorf("not a regular file (%s); writers must create a file in tmp/ and rename it into new/", fi.Mode().Type()))
	}
	// O_NOFOLLOW and O_NONBLOCK: the name may have been swapped for a
	// symlink or a FIFO since Lstat.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return "", bad(fmt.Errorf("cannot open the file: %w", err))
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", bad(fmt.Errorf("not a regular file"))
	}
	if fi.Size() == 0 {
		return "", bad(errors.New("the file is empty"))
	}
	src := &trackedReader{r: f}
	var env queue.Envelope
	var msg io.Reader
	if strings.HasSuffix(name, ".eml") {
		env, msg, err = intake.ParseEMLFile(src)
	} else {
		env, msg, err = intake.ParseEnvelopeFile(src)
	}
	if err != nil {
		return "", bad(err)
	}
	if err := intake.ValidateEnvelope(&env); err != nil {
		return "", bad(err)
	}
	limits := intake.Limits{MaxMessageSize: m.opts.MaxMessageSize, MaxRecipients: m.opts.MaxRecipients}
	if err := limits.CheckEnvelope(&env); err != nil {
		return "", bad(err)
	}
	env.Source = "maildrop"
	now := m.opts.Now()
	received := intake.Received("", m.opts.Hostname, "local (mailq maildrop)", name, now)
	body := &trackedReader{r: io.MultiReader(strings.NewReader(received), limits.Body(msg))}
	stored := arrival.NewReader(body)
	id, err := m.opts.Store.Enqueue(env, stored)
	if err != nil {
		if src.err != nil || body.err != nil {
			// Reading the file failed (too large, I/O error): its fault.
			return "", bad(errors.Join(src.err, body.err))
		}
		return "", err
	}
	owner := ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = intake.UserName(st.Uid)
	}
	arrival.Log(m.opts.Logger, arrival.Record{ID: id, Env: env, Client: "maildrop file " + name, User: owner, Body: stored})
	return id, nil
}

// trackedReader remembers the first read error other than io.EOF, so a
// failed Enqueue can be blamed on the input rather than the store.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// fail moves new/<name> to failed/ with a .error file saying why. A
// regular file it can read is copied, not renamed: it belongs to its writer
// and the drop-in group, and the operators who read failed/ (the daemon's
// group) could not open it otherwise. The original leaves new/ last, so a
// crash in between only means the file is examined again.
func (m *Watcher) fail(name string, reason error) {
	failedDir := filepath.Join(m.opts.Dir, "failed")
	dest := name
	for i := 1; ; i++ {
		if _, err := os.Lstat(filepath.Join(failedDir, dest)); errors.Is(err, os.ErrNotExist) {
			break
		}
		dest = fmt.Sprintf("%s.%d", name, i)
	}
	src := filepath.Join(m.opts.Dir, "new", name)
	destPath := filepath.Join(failedDir, dest)
	log := m.opts.Logger.Warn().Str("file", name).Str("reason", reason.Error())
	text := fmt.Sprintf("%s: %s\nThe file was moved here from %s; fix it and move it back to new/ to retry, or delete it.\n",
		m.opts.Now().UTC().Format(time.RFC3339), reason, filepath.Join(m.opts.Dir, "new"))
	errPath := destPath + ".error"
	if err := writeFailedFile(errPath, strings.NewReader(text)); err != nil {
		m.opts.Logger.Error().Err(err).Str("file", name).Str("reason", reason.Error()).Msg("maildrop: cannot write the .error file; leaving the bad file in new/")
		return
	}
	copied := false
	if in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0); err == nil {
		if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
			if err := writeFailedFile(destPath, in); err != nil {
				in.Close()
				os.Remove(destPath)
				os.Remove(errPath)
				m.opts.Logger.Error().Err(err).Str("file", name).Str("reason", reason.Error()).Msg("maildrop: cannot copy the bad file to failed/; leaving it in new/")
				return
			}
			copied = true
		}
		in.Close()
	}
	if copied {
		err := os.Remove(src)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			m.opts.Logger.Error().Err(err).Str("file", name).Msg("maildrop: bad file copied to failed/ but cannot be removed from new/; fix the permissions of new/")
		}
	} else if err := os.Rename(src, destPath); err != nil {
		// Not a regular file, or unreadable: move the name itself.
		os.Remove(errPath)
		if !errors.Is(err, os.ErrNotExist) {
			m.opts.Logger.Error().Err(err).Str("file", name).Str("reason", reason.Error()).Msg("maildrop: cannot move the bad file to failed/")
		}
		return
	}
	_ = intake.SyncDir(failedDir)
	metrics.MaildropFailed.Inc()
	log.Str("moved_to", destPath).Msg("maildrop file refused")
}

// writeFailedFile creates path in failed/ with content from r, mode 0640
// whatever the umask (systemd runs mailq with UMask=0077), and fsyncs it.
func writeFailedFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, modeFailedFile)
	if err != nil {
		return err
	}
	if err := f.Chmod(modeFailedFile); err != nil {
		f.Close()
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FailedCount is the number of files in failed/ (counted by their .error
// files), for stats.
func (m *Watcher) FailedCount() int {
	entries, err := os.ReadDir(filepath.Join(m.opts.Dir, "failed"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".error") {
			n++
		}
	}
	return n
}
