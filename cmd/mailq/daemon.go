package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"mailq/config"
	"mailq/queue"
)

// runDaemon runs mailq in the foreground until SIGTERM or SIGINT, then
// drains within shutdown_grace and closes the store. A nil return means a
// clean stop (exit status 0).
func runDaemon(cfg *config.Config, log zerolog.Logger) error {
	// Signals are caught before anything else, so a SIGTERM at any moment
	// of start-up (even while the store opens) is logged and honoured, and
	// one right after "ready" is never lost to the default handler.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	logStart(log, cfg)

	if err := makeDataDir(cfg.DataDir, log); err != nil {
		return err
	}
	if cfg.Queue.Postgres() {
		lock, err := lockNode(cfg.DataDir)
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	dbPath := filepath.Join(cfg.DataDir, "queue.db")
	store, stopped, err := openStore(dbPath, cfg, signals, log)
	if err != nil || stopped {
		return withThisCommand(err)
	}
	// The store's file lock (bbolt) or node.lock (PostgreSQL) makes this
	// process the node's only daemon, so a control socket nobody answers on
	// is safe to remove.
	if err := removeStaleSocket(cfg.Control.Socket); err != nil {
		store.Close()
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	comps, err := startComponents(ctx, cfg, store, log)
	if err != nil {
		cancel()
		store.Close()
		return err
	}

	log.Info().Str("queue", describeQueue(cfg, store)).Msg("ready")
	notify(log, daemon.SdNotifyReady)

	var watchdog <-chan time.Time
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		// Ping at half the interval systemd allows, from the main loop, so
		// a wedged loop stops the pings and systemd restarts us.
		ticker := time.NewTicker(interval / 2)
		defer ticker.Stop()
		watchdog = ticker.C
		log.Debug().Str("interval", interval.String()).Msg("systemd watchdog enabled")
	}

	for {
		select {
		case <-watchdog:
			notify(log, daemon.SdNotifyWatchdog)
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				cfg = reload(cfg, comps, log)
				continue
			}
			log.Info().Str("signal", sig.String()).Str("grace", cfg.ShutdownGrace.Duration.String()).
				Msg("stopping: no new work; letting deliveries in flight finish")
			notify(log, daemon.SdNotifyStopping)
			cancel()
			return shutdown(comps, store, cfg.ShutdownGrace.Duration, log)
		}
	}
}

// shutdown closes the components within grace, then the store. Work still
// unfinished after grace is not lost: its leases become due again at the
// next start.
func shutdown(comps *components, store queue.Store, grace time.Duration, log zerolog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := comps.shutdown(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			log.Warn().Str("grace", grace.String()).Msg("shutdown_grace elapsed with work in flight; it will be retried at the next start")
		} else {
			log.Error().Err(err).Msg("error while stopping components")
		}
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("closing the queue store: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// reload re-reads the configuration file on SIGHUP. An invalid file is
// logged and the running configuration kept.
func reload(old *config.Config, comps *components, log zerolog.Logger) *config.Config {
	notify(log, daemon.SdNotifyReloading)
	defer notify(log, daemon.SdNotifyReady)
	next, err := config.Load(old.Path)
	if err != nil {
		log.Error().Err(err).Msg("reload failed; keeping the running configuration")
		return old
	}
	for _, key := range restartOnlyChanges(old, next) {
		log.Warn().Str("key", key).Msg("changed on reload but takes effect only after a restart")
	}
	if err := comps.reload(next); err != nil {
		log.Error().Err(err).Msg("reload failed; keeping the running configuration")
		return old
	}
	log.Info().Str("config", configSource(next)).Strs("routes", routeSummary(next)).Msg("configuration reloaded")
	return next
}

// restartOnlyChanges lists the keys that differ between old and next but
// are bound at start (files, sockets, listeners).
func restartOnlyChanges(old, next *config.Config) []string {
	var keys []string
	if old.DataDir != next.DataDir {
		keys = append(keys, "data_dir")
	}
	if old.Queue != next.Queue {
		keys = append(keys, "queue")
	}
	if old.Control != next.Control {
		keys = append(keys, "control")
	}
	if old.Maildrop.Dir != next.Maildrop.Dir {
		keys = append(keys, "maildrop.dir")
	}
	if old.Metrics != next.Metrics {
		keys = append(keys, "metrics.listen")
	}
	if fmt.Sprint(old.Submission) != fmt.Sprint(next.Submission) {
		keys = append(keys, "submission")
	}
	if old.LogLevel != next.LogLevel || old.LogFormat != next.LogFormat {
		keys = append(keys, "log_level/log_format")
	}
	return keys
}

// makeDataDir creates data_dir 0700. An existing directory that others can
// read is left as it is, with a warning: changing an operator's modes
// silently would surprise them.
func makeDataDir(dir string, log zerolog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create data_dir %s: %w (set data_dir to a writable directory)", dir, err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot inspect data_dir %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("data_dir %s is not a directory", dir)
	}
	if info.Mode().Perm()&0o077 != 0 {
		log.Warn().Str("data_dir", dir).Str("mode", info.Mode().Perm().String()).
			Msg("data_dir is accessible to other users; chmod 0700 it")
	}
	return nil
}

// logStart logs version, configuration source and routes; never secrets.
func logStart(log zerolog.Logger, cfg *config.Config) {
	listeners := make([]string, 0, len(cfg.Submission))
	for _, s := range cfg.Submission {
		listeners = append(listeners, s.Listen)
	}
	log.Info().
		Str("version", versionString()).
		Str("config", configSource(cfg)).
		Str("data_dir", cfg.DataDir).
		Strs("routes", routeSummary(cfg)).
		Strs("submission", listeners).
		Str("control", cfg.Control.Socket).
		Str("maildrop", cfg.Maildrop.Dir).
		Msg("mailq starting")
	// Users who may not read the configuration find the daemon through
	// client.toml or the built-in paths (docs/configuration.md "Clients").
	for _, m := range config.ClientMismatch(cfg) {
		log.Warn().Str("problem", m).Msg("sendmail and mailqctl of users who cannot read the configuration would look elsewhere; fix client.toml beside it")
	}
	for _, w := range cfg.Warnings() {
		log.Warn().Msg("configuration: " + w)
	}
}

func configSource(cfg *config.Config) string {
	if cfg.Path == "" {
		return "embedded defaults"
	}
	return cfg.Path
}

// routeSummary is "name=host:port (domains)" per route.
func routeSummary(cfg *config.Config) []string {
	out := make([]string, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		if r.MX {
			_, port := r.Endpoint() // no host: each domain's exchangers, on this port
			out = append(out, fmt.Sprintf("%s=MX:%d %v", r.Name, port, r.Domains))
			continue
		}
		out = append(out, fmt.Sprintf("%s=%s:%d %v", r.Name, r.Host, r.Port, r.Domains))
	}
	return out
}

// notify tells systemd a state change; outside systemd it does nothing.
func notify(log zerolog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn().Err(err).Str("state", state).Msg("cannot notify systemd")
	}
}
