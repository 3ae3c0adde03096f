package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"mailq/config"
	"mailq/control/server"
	"mailq/delivery"
	"mailq/intake"
	"mailq/intake/maildrop"
	"mailq/metrics"
	"mailq/queue"
	"mailq/submission"
)

// components are the daemon's running parts. startComponents binds every
// listener before the daemon logs "ready"; shutdown stops them in the
// order mail flows: intake first, delivery last.
type components struct {
	log zerolog.Logger

	delivery *delivery.Engine
	maildrop *maildrop.Watcher
	events   *eventParts // webhooks and the suppression list (events.go)

	intake       sync.WaitGroup // submission listeners, maildrop, control
	delivered    chan error     // delivery.Run's result
	stopIntake   context.CancelFunc
	stopDelivery context.CancelFunc

	metricsServer *http.Server
	metricsAddr   net.Addr
	metricsDone   chan error
}

// startComponents binds and starts what the configuration asks for. On
// error, whatever was started is stopped again.
func startComponents(ctx context.Context, cfg *config.Config, store queue.Store, log zerolog.Logger) (c *components, err error) {
	c = &components{log: log, delivered: make(chan error, 1)}
	intakeCtx, stopIntake := context.WithCancel(ctx)
	deliveryCtx, stopDelivery := context.WithCancel(ctx)
	c.stopIntake, c.stopDelivery = stopIntake, stopDelivery
	var bound []func(context.Context) error // started only once everything is bound
	defer func() {
		if err != nil {
			stopIntake()
			stopDelivery()
			c.intake.Wait()
		}
	}()

	if c.events, err = newEventParts(cfg, store, log); err != nil {
		return nil, err
	}
	dopts := delivery.OptionsFromConfig(cfg, store, log.With().Str("component", "delivery").Logger())
	dopts.Suppression = c.events.forDelivery()
	engine, err := delivery.New(dopts)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	c.delivery = engine

	for _, sc := range cfg.Submission {
		opts, err := submissionOptions(cfg, sc, store, log)
		if err != nil {
			return nil, err
		}
		opts.RefuseRecipient = c.events.refuseAtRCPT(engine)
		l, err := submission.New(opts)
		if err != nil {
			return nil, fmt.Errorf("[[submission]] %s: %w", sc.Listen, err)
		}
		log.Info().Str("listen", l.Addr().String()).Msg("SMTP submission listening")
		bound = append(bound, l.Serve)
	}

	c.maildrop = maildrop.New(maildrop.Options{
		Dir:            cfg.Maildrop.Dir,
		Store:          store,
		MaxMessageSize: cfg.MaxMessageSize,
		MaxRecipients:  intakeMaxRecipients(cfg),
		Hostname:       cfg.Hostname,
		PollInterval:   cfg.Maildrop.PollInterval.Duration,
		Logger:         log.With().Str("component", "maildrop").Logger(),
	})
	if err := c.maildrop.MakeDirs(); err != nil {
		return nil, err
	}
	bound = append(bound, c.maildrop.Run)

	ctl := server.New(server.Options{
		Store:          store,
		Hostname:       cfg.Hostname,
		MaxMessageSize: cfg.MaxMessageSize,
		MaxRecipients:  intakeMaxRecipients(cfg),
		Logger:         log.With().Str("component", "control").Logger(),
		MaildropFailed: c.maildrop.FailedCount,
		Bounce: func(_ context.Context, id queue.ID) error {
			return engine.BounceNow([]queue.ID{id})
		},
		Webhooks:    c.events.poster.Status,
		Suppression: c.events.list,
		BounceRecipients: func(_ context.Context, id queue.ID, pattern string) error {
			return engine.BounceRecipients(id, pattern)
		},
		RouteFor: engine.RouteFor,
	})
	ln, err := ctl.Listen(cfg.Control.Socket, cfg.Control.SocketGroup)
	if err != nil {
		return nil, err
	}
	bound = append(bound, func(ctx context.Context) error { return ctl.ServeListener(ctx, ln) })

	registerQueueMetrics(store, log)
	if cfg.Metrics.Listen != "" {
		if err := c.startMetrics(cfg.Metrics.Listen); err != nil {
			ln.Close()
			return nil, err
		}
	}

	for _, run := range bound {
		c.intake.Add(1)
		go func() {
			defer c.intake.Done()
			if err := run(intakeCtx); err != nil && intakeCtx.Err() == nil {
				log.Error().Err(err).Msg("an intake component stopped; mail it would take waits until a restart")
			}
		}()
	}
	c.intake.Add(1)
	go func() {
		defer c.intake.Done()
		purgeLoop(intakeCtx, store, purgeEvery, log.With().Str("component", "purge").Logger())
	}()
	go func() { c.delivered <- engine.Run(deliveryCtx) }()
	c.events.start(store)
	return c, nil
}

// submissionOptions maps one [[submission]] table to the listener's options.
func submissionOptions(cfg *config.Config, sc config.Submission, store queue.Store, log zerolog.Logger) (submission.Options, error) {
	opts := submission.Options{
		Listen:          sc.Listen,
		ImplicitTLS:     sc.ImplicitTLS,
		AuthFile:        sc.AuthFile,
		RequireAuth:     sc.RequireAuth,
		RequireTLS:      sc.RequireTLS,
		MaxConns:        sc.MaxConns,
		MaxConnsPerIP:   sc.MaxConnsPerIP,
		TransferTimeout: sc.TransferTimeout.Duration,
		MaxRecipients:   sc.MaxRecipients,
		MaxMessageSize:  cfg.MaxMessageSize,
		Timeout:         sc.Timeout.Duration,
		Hostname:        cfg.Hostname,
		Store:           store,
		Logger:          log.With().Str("component", "submission").Str("listen", sc.Listen).Logger(),
	}
	if sc.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(sc.TLSCertFile, sc.TLSKeyFile)
		if err != nil {
			return opts, fmt.Errorf("[[submission]] %s: tls.cert_file/tls.key_file: %w", sc.Listen, err)
		}
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// startMetrics binds [metrics] listen and serves /metrics in the background.
func (c *components) startMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("[metrics] listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{ErrorLog: promLogger{c.log}}))
	c.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	c.metricsAddr = ln.Addr()
	c.metricsDone = make(chan error, 1)
	go func() { c.metricsDone <- c.metricsServer.Serve(ln) }()
	c.log.Info().Str("listen", ln.Addr().String()).Msg("serving Prometheus metrics on /metrics")
	return nil
}

// reload hands a new, valid configuration to the parts that can change
// while running: routes, retry policy and [[tls_policy]] go to the
// delivery engine.
func (c *components) reload(cfg *config.Config) error {
	c.delivery.SetTLSPolicies(delivery.MXOptionsFromConfig(cfg).TLSPolicies)
	return c.delivery.SetRoutes(delivery.RoutesFromConfig(cfg.Routes))
}

// shutdown stops intake (no new mail), then lets delivery drain (it keeps
// its own shutdown_grace), then stops metrics; it waits at most until ctx
// is done.
func (c *components) shutdown(ctx context.Context) error {
	var errs []error
	c.stopIntake()
	intakeDone := make(chan struct{})
	go func() { c.intake.Wait(); close(intakeDone) }()
	select {
	case <-intakeDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("intake: %w", ctx.Err()))
	}
	c.stopDelivery()
	select {
	case err := <-c.delivered:
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("delivery: %w", err))
		}
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("delivery: %w", ctx.Err()))
	}
	c.events.shutdown() // after delivery: its last outcomes' events get a chance to go out
	if c.metricsServer != nil {
		if err := c.metricsServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics server: %w", err))
		}
		if err := <-c.metricsDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("metrics server: %w", err))
		}
	}
	return errors.Join(errs...)
}

// promLogger routes promhttp's error messages into the daemon's log.
type promLogger struct{ log zerolog.Logger }

func (p promLogger) Println(v ...any) { p.log.Error().Msg(fmt.Sprint(v...)) }

// intakeMaxRecipients is the recipient limit of the local intake paths
// (mailqctl enqueue, sendmail, maildrop): the largest max_recipients of the
// SMTP listeners, so no local path takes more than SMTP would.
func intakeMaxRecipients(cfg *config.Config) int {
	n := 0
	for _, sc := range cfg.Submission {
		n = max(n, sc.MaxRecipients)
	}
	if n == 0 {
		return intake.DefaultMaxRecipients
	}
	return n
}
