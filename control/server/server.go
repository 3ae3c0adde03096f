// Package server answers the control API (package control) in the daemon:
// over the control socket, with the peer's credentials checked, or over one
// connection from a store opened read-only (`mailq read-queue`).
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"mailq/events"
	"mailq/queue"
	"mailq/suppression"
)

// Options configures a Server.
type Options struct {
	Store          queue.Store
	Hostname       string // the "by" of the Received: line enqueue prepends
	MaxMessageSize int64  // enqueue refuses larger bodies; 0 = no limit
	MaxRecipients  int    // enqueue refuses more recipients; 0 = intake.DefaultMaxRecipients
	Logger         zerolog.Logger
	// MaildropFailed reports the maildrop files moved to failed/ (stats).
	// May be nil.
	MaildropFailed func() int
	// Bounce bounces every pending recipient of a message now, notifying the
	// sender; the daemon wires it to delivery, which owns DSN generation.
	// Nil makes the bounce command answer 501.
	Bounce func(ctx context.Context, id queue.ID) error
	// BounceRecipients bounces only the recipients of id still to do that
	// match pattern (queue.MatchAddress). Nil: bounce --to is refused.
	BounceRecipients func(ctx context.Context, id queue.ID, pattern string) error
	// RouteFor names the route for a recipient (summary --by route); nil
	// makes that summary answer 501.
	RouteFor func(addr string) string
	// Authorize decides whether a peer may use the API. Nil means
	// GroupAuthorizer for the socket's group, set by Serve.
	Authorize func(Peer) error
	// Now is the clock for Received: lines; nil means time.Now.
	Now func() time.Time
	// Webhooks reports the webhooks' state; nil answers an empty list.
	Webhooks func() []events.WebhookStatus
	// Suppression is the suppression list; nil answers 501.
	Suppression *suppression.List
}

// Server is the control API.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	streams streams // events --follow (events.go)
}

// New returns a Server; call Serve to listen, or use Handler directly.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.routes()
	return s
}

// shutdownWait bounds how long Serve waits for requests in flight when its
// context ends; a slow list stream must not hold the daemon's drain.
const shutdownWait = 5 * time.Second

// Serve listens on socketPath (mode 0660, group `group` when it exists,
// else the daemon's own group with a warning) until ctx ends, then removes
// the socket. A stale socket nobody answers on is replaced; a live one is an
// error (another daemon runs).
func (s *Server) Serve(ctx context.Context, socketPath, group string) error {
	ln, err := s.Listen(socketPath, group)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

// Listen binds the control socket as Serve describes, so the daemon can
// announce "ready" only once it is bound; ServeListener then serves it.
func (s *Server) Listen(socketPath, group string) (net.Listener, error) {
	if err := removeStaleSocket(socketPath); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w (check that its directory exists and is writable by the daemon)", socketPath, err)
	}
	gid, err := s.setSocketOwnership(socketPath, group)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if s.opts.Authorize == nil {
		s.opts.Authorize = GroupAuthorizer(gid)
	}
	s.opts.Logger.Info().Str("socket", socketPath).Msg("control socket listening")
	return ln, nil
}

// ServeListener serves the API on ln until ctx ends, then closes ln (which
// unlinks a unix socket) after at most shutdownWait for requests in flight.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	srv := &http.Server{
		Handler:           s.Handler(),
		ConnContext:       connContext,
		ReadHeaderTimeout: 30 * time.Second,
	}
	srv.RegisterOnShutdown(s.streams.close)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control: serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// setSocketOwnership makes the socket 0660 and gives it the wanted group,
// returning the gid the socket ended up with.
func (s *Server) setSocketOwnership(path, group string) (uint32, error) {
	if err := os.Chmod(path, 0o660); err != nil {
		return 0, fmt.Errorf("control: chmod 0660 %s: %w", path, err)
	}
	gid := uint32(os.Getegid())
	if group == "" {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		s.opts.Logger.Warn().Str("socket", path).Str("socket_group", group).Err(err).
			Msg("control socket group does not exist; the socket keeps the daemon's own group")
		return gid, nil
	}
	want, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return gid, fmt.Errorf("control: group %s has a non-numeric gid %q", group, g.Gid)
	}
	if err := os.Lchown(path, -1, int(want)); err != nil {
		s.opts.Logger.Warn().Str("socket", path).Str("socket_group", group).Err(err).
			Msg("cannot give the control socket its group (the daemon must be root or a member); it keeps the daemon's own group")
		return gid, nil
	}
	return uint32(want), nil
}

// removeStaleSocket removes a socket file left by a crashed daemon. A socket
// that answers belongs to a running daemon and is left alone.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control: %s exists and is not a socket; remove it or choose another control.socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control: %s is in use: another mailq daemon is running", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("control: probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control: removing stale socket %s: %w", path, err)
	}
	return nil
}

// Handler is the API with the peer check in front. Requests whose
// connection carries no peer (Serve's ConnContext records it) are refused.
func (s *Server) Handler() http.Handler {
	authorize := s.opts.Authorize
	if authorize == nil {
		authorize = GroupAuthorizer(uint32(os.Getegid()))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := peerOf(r.Context())
		if err == nil {
			err = authorize(p)
		}
		if err != nil {
			s.opts.Logger.Warn().Uint32("uid", p.UID).Int32("pid", p.PID).Str("path", r.URL.Path).Err(err).
				Msg("control request refused")
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}
