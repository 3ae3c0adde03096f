package intake

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mailq/esmtp"
	"mailq/queue"
)

// The maildrop envelope file (docs/maildrop.md), nullmailer-compatible:
//
//	line 1:      the sender ("" or "<>" for the null sender)
//	then:        one recipient per line
//	then:        an empty line
//	then:        the RFC 5322 message, unchanged
//
// mailq extension, so that sendmail's -N/-R/-V survive the maildrop fallback:
// the sender line may carry space-separated ESMTP-style parameters
// " RET=FULL|HDRS" and " ENVID=<xtext>", and a recipient line
// " NOTIFY=<list>" and " ORCPT=<type>;<xtext>" (RFC 3461 encodings). An
// address never contains an unquoted space, so the first space outside a
// quoted local part starts the parameters; nullmailer files have none.
// Lines end in LF (a CR before it is ignored).

// DropFile writes env and body as a maildrop envelope file the way every
// writer must (docs/maildrop.md): create it in dir/tmp/ (mode 0640 whatever
// the umask: the daemon reads it through the directory's group, nobody else
// may), write, fsync, rename into dir/new/, then make the rename durable. It
// returns the final path. The envelope is validated first, so a file that
// DropFile writes is one the pickup will take.
//
// The rename is the commit point: once it succeeds the file is in new/ and
// the daemon will take it, so DropFile never reports failure after it (a
// caller that retried would send the message twice). If the rename cannot
// be made durable, DropFile returns the path and a *NotSyncedError, which
// callers report as a warning, not as a failure.
func DropFile(dir string, env queue.Envelope, body io.Reader) (string, error) {
	env.Recipients = append([]queue.RecipientSpec(nil), env.Recipients...)
	if err := ValidateEnvelope(&env); err != nil {
		return "", err
	}
	name, err := uniqueName()
	if err != nil {
		return "", err
	}
	tmpPath := filepath.Join(dir, "tmp", name)
	newPath := filepath.Join(dir, "new", name)
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, dropFileMode)
	if err != nil {
		return "", fmt.Errorf("maildrop: create %s: %w", tmpPath, err)
	}
	defer f.Close()
	fail := func(err error) (string, error) {
		os.Remove(tmpPath)
		return "", err
	}
	// A writer's umask (077 is common for services) must not hide the file
	// from the daemon, which reads it through the group.
	if err := f.Chmod(dropFileMode); err != nil {
		return fail(fmt.Errorf("maildrop: chmod %s: %w", tmpPath, err))
	}
	w := bufio.NewWriterSize(f, 64<<10)
	if _, err := io.WriteString(w, FormatEnvelopeHeader(env)); err != nil {
		return fail(fmt.Errorf("maildrop: write %s: %w", tmpPath, err))
	}
	if _, err := io.Copy(w, body); err != nil {
		return fail(fmt.Errorf("maildrop: write %s: %w", tmpPath, err))
	}
	if err := w.Flush(); err != nil {
		return fail(fmt.Errorf("maildrop: write %s: %w", tmpPath, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("maildrop: fsync %s: %w", tmpPath, err))
	}
	if err := os.Rename(tmpPath, newPath); err != nil {
		return fail(fmt.Errorf("maildrop: rename into %s: %w", newPath, err))
	}
	if err := syncRename(filepath.Dir(newPath), f); err != nil {
		return newPath, &NotSyncedError{Path: newPath, Err: err}
	}
	return newPath, nil
}

// NotSyncedError says a file is in new/ (stored: the daemon will take it)
// but the rename that put it there could not be confirmed durable: a power
// failure before the kernel writes it back could undo it.
type NotSyncedError struct {
	Path string
	Err  error
}

func (e *NotSyncedError) Error() string {
	return fmt.Sprintf("maildrop: %s is stored, but its directory entry could not be flushed to disk (%v); it is lost only if the machine crashes before the kernel writes it back", e.Path, e.Err)
}

func (e *NotSyncedError) Unwrap() error { return e.Err }

// syncRename makes a rename into newDir durable. fsync(2) of the directory
// needs it opened, which needs read permission, and writers outside the
// daemon's user may not read new/ (3733: nobody lists others' files). They
// get syncfs(2) on the file instead: it flushes the whole filesystem's
// metadata, the new directory entry included. Dearer on a busy filesystem,
// but the only durable commit open to a writer that cannot open new/.
func syncRename(newDir string, f *os.File) error {
	err := SyncDir(newDir)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if serr := unix.Syncfs(int(f.Fd())); serr != nil {
		return fmt.Errorf("syncfs after %v: %w", err, serr)
	}
	return nil
}

// dropFileMode is the mode of maildrop files: the owner (the writer) and
// the directory's group (the daemon's) may read them, nobody else.
const dropFileMode = 0o640

// FormatEnvelopeHeader returns the envelope lines and the empty line that
// precede the message in an envelope file.
func FormatEnvelopeHeader(env queue.Envelope) string {
	var b strings.Builder
	b.WriteString(env.Sender)
	if env.Ret != "" {
		b.WriteString(" RET=" + env.Ret)
	}
	if env.EnvID != "" {
		b.WriteString(" ENVID=" + esmtp.EncodeXtext(env.EnvID))
	}
	b.WriteByte('\n')
	for _, r := range env.Recipients {
		b.WriteString(r.Address)
		if r.Notify != "" {
			b.WriteString(" NOTIFY=" + r.Notify)
		}
		if r.ORCPT != "" {
			b.WriteString(" ORCPT=" + esmtp.ParseORCPT(r.ORCPT).Param())
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}

// uniqueName is a file name unique across writers: time, pid, random.
func uniqueName() (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("maildrop: random name: %w", err)
	}
	return fmt.Sprintf("%d.%d.%s", time.Now().UnixNano(), os.Getpid(), hex.EncodeToString(rnd[:])), nil
}

// SyncDir fsyncs a directory, so a name created or renamed in it survives a
// crash (the maildrop writer and its reader both need it).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
