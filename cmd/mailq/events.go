package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"mailq/config"
	"mailq/delivery"
	"mailq/events"
	"mailq/events/webhook"
	"mailq/queue"
	"mailq/suppression"
)

// eventParts are the daemon's delivery events and suppression list: the
// webhook poster, the list (always there for mailqctl; given to delivery
// only when [suppression] enabled), and the purge of both.
type eventParts struct {
	poster *webhook.Poster
	list   *suppression.List
	cfg    *config.Config
	log    zerolog.Logger
	stop   context.CancelFunc
	done   chan struct{}
}

// storeJournal is what opening the store needs so that events are stored with
// their changes.
func storeJournal(opts queue.Options) queue.Options {
	opts.Journal = events.Journal
	opts.MessageIDOf = events.MessageIDOf
	return opts
}

func newEventParts(cfg *config.Config, store queue.Store, log zerolog.Logger) (*eventParts, error) {
	log = log.With().Str("component", "events").Logger()
	hooks := make([]webhook.Endpoint, 0, len(cfg.Webhooks))
	for _, w := range cfg.Webhooks {
		h, err := webhookFromConfig(w)
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, h)
	}
	poster, err := webhook.NewPoster(webhook.Options{Store: store, Webhooks: hooks, Logger: log})
	if err != nil {
		return nil, err
	}
	list := suppression.New(suppression.Options{
		Store: store, TTL: cfg.Suppression.TTL.Duration, Codes: cfg.Suppression.Codes, SkipRoutes: cfg.Suppression.SkipRoutes,
	})
	return &eventParts{poster: poster, list: list, cfg: cfg, log: log}, nil
}

// webhookFromConfig reads the secret and CA files of one [[webhook]].
func webhookFromConfig(w config.Webhook) (webhook.Endpoint, error) {
	h := webhook.Endpoint{Name: w.Name, URL: w.URL, Timeout: w.Timeout.Duration, MaxAge: w.MaxAge.Duration, Workers: w.Workers}
	where := "[[webhook]] " + w.Name
	if w.Name == "" {
		where = "[[webhook]] #" // the URL may hold a password; never print it
	}
	if len(w.Events) > 0 {
		h.Events = map[events.Type]bool{}
		for _, e := range w.Events {
			h.Events[events.Type(e)] = true
		}
	}
	if w.SecretFile != "" {
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return h, fmt.Errorf("%s: secret_file: %w", where, err)
		}
		secret := strings.TrimRight(string(b), "\r\n")
		if secret == "" {
			return h, fmt.Errorf("%s: secret_file %s is empty; put the shared secret in it", where, w.SecretFile)
		}
		h.Secret = []byte(secret)
	}
	if w.CAFile != "" {
		pem, err := os.ReadFile(w.CAFile)
		if err != nil {
			return h, fmt.Errorf("%s: ca_file: %w", where, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return h, fmt.Errorf("%s: ca_file %s holds no PEM certificate", where, w.CAFile)
		}
		h.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return h, nil
}

// forDelivery is the list as delivery uses it: nil when switched off.
func (p *eventParts) forDelivery() *suppression.List {
	if !p.cfg.Suppression.Enabled {
		return nil
	}
	return p.list
}

// refuseAtRCPT is the submission listeners' RCPT check when
// [suppression] refuse_at_rcpt is set, else nil.
func (p *eventParts) refuseAtRCPT(engine *delivery.Engine) func(string) (string, bool) {
	if !p.cfg.Suppression.Enabled || !p.cfg.Suppression.RefuseAtRcpt {
		return nil
	}
	return func(addr string) (string, bool) {
		e, ok := engine.Suppressed(addr)
		if !ok {
			return "", false
		}
		return suppression.Diagnostic(e), true
	}
}

// start runs the poster and the hourly purge until stop.
func (p *eventParts) start(store queue.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		go p.purgeLoop(ctx, store)
		if err := p.poster.Run(ctx); err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("webhook poster stopped; events wait in the store until a restart")
		}
	}()
}

// shutdown stops posting; events not yet acknowledged are posted after
// the next start.
func (p *eventParts) shutdown() {
	if p.stop != nil {
		p.stop()
		<-p.done
	}
}

// purgeLoop drops events older than retention that every webhook is past,
// and expired suppression entries, at start and hourly.
func (p *eventParts) purgeLoop(ctx context.Context, store queue.Store) {
	t := time.NewTicker(purgeEvery)
	defer t.Stop()
	for {
		keep, ok := p.poster.MinCursor()
		if !ok {
			keep = ^uint64(0)
		}
		if n, err := store.PurgeEvents(time.Now().Add(-p.cfg.Retention.Duration), keep); err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("purging old events failed; retrying at the next interval")
		} else if n > 0 {
			p.log.Info().Int("events", n).Msg("purged events past retention")
		}
		if n, err := p.list.Purge(); err != nil && ctx.Err() == nil {
			p.log.Error().Err(err).Msg("purging expired suppression entries failed")
		} else if n > 0 {
			p.log.Info().Int("entries", n).Msg("purged expired suppression entries")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
