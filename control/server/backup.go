package server

import (
	"bufio"
	"io"
	"net/http"
	"time"

	"mailq/control"
)

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
	w.Header().Set("Trailer", control.ErrorTrailer)
	bw := bufio.NewWriterSize(w, 256<<10)
	n, err := store.Backup(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.opts.Logger.Error().Err(err).Int64("bytes", n).Msg("control: backup failed")
		w.Header().Set(control.ErrorTrailer, oneLine(err.Error()))
		return
	}
	s.opts.Logger.Info().Int64("bytes", n).Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("control: backup streamed")
}
