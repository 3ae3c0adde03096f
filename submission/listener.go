// Package submission is mailq's SMTP submission listener: applications hand
// it mail over SMTP (RFC 5321, RFC 6409-style) and get a 250 only once the
// message is durable in the queue.
package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"
	"mailq/queue"
)

// Options configures one listener (config.Submission plus what the daemon knows).
type Options struct {
	Listen         string      // host:port, e.g. "127.0.0.1:2525"
	TLSConfig      *tls.Config // nil = no TLS
	ImplicitTLS    bool        // TLS from the first byte instead of STARTTLS
	AuthFile       string      // "" = no AUTH; lines "user:hash" (bcrypt or argon2id)
	RequireAuth    bool
	RequireTLS     bool
	MaxConns       int           // default 100
	MaxRecipients  int           // default 1000
	MaxMessageSize int64         // bytes; default 36700160 (35 MiB)
	Timeout        time.Duration // per command and idle; default 5m
	Hostname       string        // greeting, Received: "by"; default os.Hostname
	Store          *queue.Store
	Logger         zerolog.Logger
	Now            func() time.Time // default time.Now
	// RefuseRecipient, when set, is asked at each RCPT; refuse makes the
	// reply 550 5.1.1 with reason (the suppression list's refuse_at_rcpt).
	RefuseRecipient func(addr string) (reason string, refuse bool)
}

// Listener is a bound SMTP submission listener.
type Listener struct {
	opts   Options
	creds  *credentials // nil without AuthFile
	ln     net.Listener
	conns  *connTracker
	server *smtp.Server
}

// New validates opts, loads the credentials file and binds the socket, so
// the daemon can report ready once every listener is bound; Serve accepts.
func New(opts Options) (*Listener, error) {
	if opts.Store == nil {
		return nil, errors.New("submission: no queue store given")
	}
	if opts.ImplicitTLS && opts.TLSConfig == nil {
		return nil, fmt.Errorf("submission %s: tls.implicit needs tls.cert_file and tls.key_file", opts.Listen)
	}
	if opts.RequireTLS && opts.TLSConfig == nil {
		return nil, fmt.Errorf("submission %s: require_tls needs tls.cert_file and tls.key_file", opts.Listen)
	}
	if opts.RequireAuth && opts.AuthFile == "" {
		return nil, fmt.Errorf("submission %s: require_auth needs auth_file", opts.Listen)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 100
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 1000
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 36700160
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Listener{opts: opts}
	if opts.AuthFile != "" {
		c, err := loadCredentials(opts.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("submission %s: %w", opts.Listen, err)
		}
		l.creds = c
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("submission: cannot listen on %s: %w", opts.Listen, err)
	}
	// Beyond MaxConns, connections wait in the kernel's backlog until a
	// session ends rather than being refused.
	ln = netutil.LimitListener(ln, opts.MaxConns)
	l.conns = &connTracker{Listener: ln, open: map[net.Conn]struct{}{}}
	ln = l.conns
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, opts.TLSConfig)
	}
	l.ln = ln

	s := smtp.NewServer(&backend{l: l})
	s.Domain = opts.Hostname
	s.MaxRecipients = opts.MaxRecipients
	s.MaxMessageBytes = opts.MaxMessageSize
	s.ReadTimeout = opts.Timeout
	s.WriteTimeout = opts.Timeout
	s.EnableSMTPUTF8 = true
	s.EnableDSN = true
	s.ErrorLog = zerologAdapter{opts.Logger}
	if !opts.ImplicitTLS {
		s.TLSConfig = opts.TLSConfig // enables STARTTLS
	}
	// Without require_tls, AUTH may run in clear text (loopback apps);
	// with it, go-smtp offers AUTH only after TLS.
	s.AllowInsecureAuth = !opts.RequireTLS
	l.server = s
	return l, nil
}

// Addr is the bound address (useful with port 0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve accepts sessions until ctx is done, then stops accepting, gives
// sessions in progress a few seconds to finish and closes them. A message
// whose enqueue completed is stored whether or not its 250 reached the client.
func (l *Listener) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.server.Serve(l.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("submission %s: %w", l.opts.Listen, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.server.Shutdown(shutdown); err != nil {
		// go-smtp's Close is a no-op after Shutdown: close what is left ourselves.
		l.conns.closeAll()
	}
	<-errc
	return nil
}

// connTracker remembers accepted connections so Serve can close the ones
// still open when the shutdown grace period ends.
type connTracker struct {
	net.Listener
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func (t *connTracker) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: t}
	t.mu.Lock()
	t.open[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.open))
	for c := range t.open {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.open, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// zerologAdapter sends go-smtp's internal errors to our log.
type zerologAdapter struct{ log zerolog.Logger }

func (z zerologAdapter) Printf(format string, v ...any) {
	z.log.Warn().Msgf(format, v...)
}

func (z zerologAdapter) Println(v ...any) {
	z.log.Warn().Msg(fmt.Sprint(v...))
}
