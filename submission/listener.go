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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
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
	MaxConns       int   // default 100; further clients get 421 4.7.0
	MaxConnsPerIP  int   // default 20; further clients from one address get 421 4.7.0
	MaxRecipients  int   // default 1000
	MaxMessageSize int64 // bytes; default 36700160 (35 MiB)
	// Timeout bounds the wait for one command line and, during a message
	// transfer, each read (idle time); default 5m.
	Timeout time.Duration
	// TransferTimeout bounds one whole DATA or BDAT transfer, however
	// steadily the client sends; default 1h.
	TransferTimeout time.Duration
	// AuthFailDelay is the pause before the reply to each failed AUTH
	// after the third on one connection (times the failures beyond three);
	// default 1s. The tenth failure closes the connection.
	AuthFailDelay time.Duration
	Hostname      string // greeting, Received: "by"; default os.Hostname
	Store         queue.Store
	Logger        zerolog.Logger
	Now           func() time.Time // default time.Now
	// RefuseRecipient, when set, is asked at each RCPT; refuse makes the
	// reply 550 5.1.1 with reason (the suppression list's refuse_at_rcpt).
	RefuseRecipient func(addr string) (reason string, refuse bool)
}

// Listener is a bound SMTP submission listener.
type Listener struct {
	opts  Options
	creds *credentials // nil without AuthFile
	ln    net.Listener

	closing  atomic.Bool // Serve's context is done: idle sessions end with 421
	sessions sync.WaitGroup
	mu       sync.Mutex
	conns    map[*conn]struct{}
	perIP    map[string]int
	open     int // admitted connections, for max_connections
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
	if opts.MaxConnsPerIP <= 0 {
		opts.MaxConnsPerIP = 20
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
	if opts.TransferTimeout <= 0 {
		opts.TransferTimeout = time.Hour
	}
	if opts.AuthFailDelay <= 0 {
		opts.AuthFailDelay = time.Second
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Listener{opts: opts, conns: map[*conn]struct{}{}, perIP: map[string]int{}}
	if opts.AuthFile != "" {
		c, err := loadCredentials(opts.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("submission %s: %w", opts.Listen, err)
		}
		l.creds = c
	}
	// No TCP keep-alive: every read has its own timeout (Options.Timeout),
	// and the keep-alive options cost three setsockopt calls a connection.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("submission: cannot listen on %s: %w", opts.Listen, err)
	}
	l.ln = ln
	return l, nil
}

// Addr is the bound address (useful with port 0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// shutdownGrace is how long sessions in the middle of a message may go on
// after Serve's context is done.
const shutdownGrace = 5 * time.Second

// Serve accepts sessions until ctx is done, then stops accepting, ends idle
// sessions with 421, gives transfers in progress a few seconds to finish and
// closes the rest. A message whose enqueue completed is stored whether or
// not its 250 reached the client.
func (l *Listener) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.acceptLoop() }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("submission %s: %w", l.opts.Listen, err)
	case <-ctx.Done():
	}
	l.closing.Store(true)
	l.ln.Close()
	if err == nil {
		<-errc
	}
	l.mu.Lock()
	for c := range l.conns {
		c.interruptIfIdle()
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		l.mu.Lock()
		for c := range l.conns {
			c.raw.Close()
		}
		l.mu.Unlock()
		<-done
	}
	return err
}

func (l *Listener) acceptLoop() error {
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.opts.Logger.Warn().Err(err).Dur("retry_in", delay).Msg("submission: accept failed")
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		ip := remoteIP(nc)
		if why := l.admit(ip); why != "" {
			go l.refuse(nc, why)
			continue
		}
		c := newConn(l, nc, ip)
		l.track(c)
		l.sessions.Add(1)
		go func() {
			defer l.sessions.Done()
			c.serve()
			l.release(c)
		}()
	}
}

// admit counts a new connection from ip, or says why it is refused
// (max_connections overall or per client address).
func (l *Listener) admit(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.opts.MaxConns:
		return "Too many connections, try again later"
	case l.perIP[ip] >= l.opts.MaxConnsPerIP:
		return "Too many connections from your address, try again later"
	}
	l.perIP[ip]++
	l.open++
	return ""
}

func (l *Listener) track(c *conn) {
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
}

func (l *Listener) release(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	l.open--
	if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
		delete(l.perIP, c.ip)
	}
}

// refuse answers a client beyond the connection limits with 421 (RFC 5321
// §3.8) instead of leaving it in the kernel's backlog without a greeting.
// Under implicit TLS a clear-text reply would be garbage: just close.
func (l *Listener) refuse(nc net.Conn, why string) {
	defer nc.Close()
	l.opts.Logger.Warn().Str("remote", remoteIP(nc)).Msg("submission: connection refused: " + why)
	if l.opts.ImplicitTLS {
		return
	}
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "421 4.7.0 %s %s\r\n", l.opts.Hostname, why)
}

func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return nc.RemoteAddr().String()
}
