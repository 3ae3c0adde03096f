package intake

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mailq/queue"
)

// The maildrop envelope file (interfaces.md "The maildrop"), nullmailer-compatible:
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
// writer must: create it in dir/tmp/ (mode 0640: the daemon's group reads it,
// nobody else), write, fsync, rename into dir/new/, fsync dir/new/. It
// returns the final path. The envelope is validated first, so a file that
// DropFile writes is one the pickup will take.
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
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", fmt.Errorf("maildrop: create %s: %w", tmpPath, err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmpPath)
		return "", err
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
	if err := f.Close(); err != nil {
		os.Remove(tmpPath)
		return "", fmt.Errorf("maildrop: close %s: %w", tmpPath, err)
	}
	if err := os.Rename(tmpPath, newPath); err != nil {
		os.Remove(tmpPath)
		return "", fmt.Errorf("maildrop: rename into %s: %w", newPath, err)
	}
	if err := syncDir(filepath.Dir(newPath)); err != nil {
		// The file is in new/ but its directory entry may not be durable yet.
		return "", fmt.Errorf("maildrop: fsync %s: %w", filepath.Dir(newPath), err)
	}
	return newPath, nil
}

// FormatEnvelopeHeader returns the envelope lines and the empty line that
// precede the message in an envelope file.
func FormatEnvelopeHeader(env queue.Envelope) string {
	var b strings.Builder
	b.WriteString(env.Sender)
	if env.Ret != "" {
		b.WriteString(" RET=" + env.Ret)
	}
	if env.EnvID != "" {
		b.WriteString(" ENVID=" + EncodeXtext(env.EnvID))
	}
	b.WriteByte('\n')
	for _, r := range env.Recipients {
		b.WriteString(r.Address)
		if r.Notify != "" {
			b.WriteString(" NOTIFY=" + r.Notify)
		}
		if r.ORCPT != "" {
			typ, addr, _ := strings.Cut(r.ORCPT, ";")
			b.WriteString(" ORCPT=" + typ + ";" + EncodeXtext(addr))
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

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
