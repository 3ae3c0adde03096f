package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// backupErrorTrailer carries an error that happened after the snapshot
// began to stream; a client must not keep a file that ended with one.
const backupErrorTrailer = "Mailq-Error"

// backupStore is a store that can stream a snapshot of itself: the bbolt
// store can; a PostgreSQL queue is backed up with PostgreSQL's own tools.
type backupStore interface {
	Backup(w io.Writer) (int64, error)
}

// handleBackup streams a consistent snapshot of the store (one read
// transaction, boltstore.Store.Backup); enqueue and delivery go on meanwhile.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	store, ok := s.opts.Store.(backupStore)
	if !ok {
		writeError(w, http.StatusNotImplemented, "backup copies the bbolt queue file; this queue is in PostgreSQL: back it up with pg_dump or PostgreSQL's own backups")
		return
	}
	start := time.Now()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", backupErrorTrailer)
	bw := bufio.NewWriterSize(w, 256<<10)
	n, err := store.Backup(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.opts.Logger.Error().Err(err).Int64("bytes", n).Msg("control: backup failed")
		w.Header().Set(backupErrorTrailer, oneLine(err.Error()))
		return
	}
	s.opts.Logger.Info().Int64("bytes", n).Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("control: backup streamed")
}

// Backup writes a snapshot of the live store to path: first to a
// temporary file beside it, fsync'd, then renamed into place, so path is
// either a complete snapshot or not there. Mode 0600: it holds every
// message.
func (c *Client) Backup(ctx context.Context, path string) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, apiPrefix+"backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		if msg := resp.Trailer.Get(backupErrorTrailer); msg != "" {
			err = fmt.Errorf("the daemon could not finish the snapshot: %s", msg)
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("backup to %s failed, nothing was written there: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}
