package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"mailq/config"
	"mailq/metrics"
	"mailq/queue"
)

// components are the daemon's running parts. startComponents binds every
// listener before the daemon logs "ready"; shutdown stops them in the
// reverse order of the flow of mail: intake first, delivery last.
type components struct {
	log zerolog.Logger

	// Intake and control (wired in later: submission listeners, maildrop
	// watcher, control socket server).
	// submission []*submission.Server
	// maildrop   *maildrop.Watcher
	// control    *control.Server

	// Delivery engine; reload hands it the new routes and policy.
	// delivery *delivery.Engine

	metricsServer *http.Server
	metricsAddr   net.Addr
	metricsDone   chan error
}

// startComponents starts what the configuration asks for. On error,
// whatever was started is stopped again.
func startComponents(ctx context.Context, cfg *config.Config, store *queue.Store, log zerolog.Logger) (*components, error) {
	_ = ctx   // the delivery engine and intake will run under ctx
	_ = store // and share the store
	c := &components{log: log}
	if cfg.Metrics.Listen != "" {
		if err := c.startMetrics(cfg.Metrics.Listen); err != nil {
			return nil, err
		}
	}
	return c, nil
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
// while running (routes and retry policy go to the delivery engine).
func (c *components) reload(cfg *config.Config) {
	_ = cfg // delivery.Reload(cfg) will go here
}

// shutdown stops every component, waiting at most until ctx is done.
func (c *components) shutdown(ctx context.Context) error {
	var errs []error
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
