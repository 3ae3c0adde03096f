package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"mailq/config"
	"mailq/metrics"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// rebuildLogEvery spaces the progress lines of an index rebuild.
const rebuildLogEvery = 5 * time.Second

// startExtension is what each EXTEND_TIMEOUT_USEC asks systemd for while an
// index rebuild makes progress: well above the time between two batches.
const startExtension = 30 * time.Second

// openStore opens the queue while watching for signals. Open is quick
// (indexes are kept by every commit; only leases left by a crash are
// recovered), except for a one-time index rebuild, which is logged with its
// progress and keeps systemd's start timeout extended. A SIGTERM or SIGINT
// meanwhile stops start-up with a log line (stopped is true): every commit
// is atomic, so stopping mid-rebuild loses nothing and the next start
// begins the rebuild again.
func openStore(path string, cfg *config.Config, signals <-chan os.Signal, log zerolog.Logger) (store queue.Store, stopped bool, err error) {
	if cfg.Queue.Postgres() {
		return openPostgres(cfg, signals, log)
	}
	var lastLog time.Time
	opts := queue.Options{
		Retention: cfg.Retention.Duration,
		OnDamaged: func(id queue.ID, reason error) {
			log.Error().Str("queue_id", string(id)).Err(reason).
				Msg("damaged queue record set aside; inspect it with `mailqctl show`, it was not delivered")
		},
		OnCommit: func(writes int) {
			metrics.QueueCommits.Inc()
			metrics.QueueCommitWrites.Add(float64(writes))
		},
		OnPurged: func(id queue.ID) {
			log.Info().Str("queue_id", string(id)).Msg("removed: done and past retention")
		},
		OnRebuild: func(p queue.RebuildProgress) {
			notify(log, fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", startExtension.Microseconds()))
			switch {
			case p.Done:
				log.Info().Int("records", p.Checked).Str("took", p.Elapsed.Round(time.Millisecond).String()).
					Msg("queue indexes rebuilt")
			case p.Checked == 0:
				lastLog = time.Now()
				log.Warn().Str("reason", p.Reason).
					Msg("rebuilding the queue indexes from every record before start-up completes; this takes time proportional to the queue")
			case time.Since(lastLog) >= rebuildLogEvery:
				lastLog = time.Now()
				log.Info().Int("records", p.Checked).Str("elapsed", p.Elapsed.Round(time.Second).String()).
					Msg("rebuilding the queue indexes")
			}
		},
	}
	log.Debug().Str("queue", path).Msg("opening the queue")
	return openWatching(signals, log, func() (queue.Store, error) {
		return boltstore.Open(path, storeJournal(opts)) // events (events.go)
	})
}

// openWatching runs open in the background and returns its result, or
// stopped when SIGTERM or SIGINT comes first.
func openWatching(signals <-chan os.Signal, log zerolog.Logger, open func() (queue.Store, error)) (queue.Store, bool, error) {
	type opened struct {
		store queue.Store
		err   error
	}
	done := make(chan opened, 1)
	go func() {
		s, err := open()
		done <- opened{s, err}
	}()
	for {
		select {
		case o := <-done:
			return o.store, false, o.err
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				log.Warn().Msg("SIGHUP while the queue opens: ignored; send it again once mailq is ready")
				continue
			}
			log.Info().Str("signal", sig.String()).
				Msg("stopping during start-up, before the queue was open; nothing acknowledged is lost and the next start picks up where this one stopped")
			notify(log, daemon.SdNotifyStopping)
			return nil, true, nil
		}
	}
}
