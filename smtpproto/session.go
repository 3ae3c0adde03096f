package smtpproto

// This file is the session: connect, greeting, EHLO/HELO, STARTTLS, and
// the liveness probe, RSET and QUIT (docs/javamail.md "Session", with
// docs/delivery.md).

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DialOptions are the per-connection knobs that are not route settings.
type DialOptions struct {
	Transcript bool           // record Conn.Transcript (AUTH redacted)
	Logger     zerolog.Logger // zero value logs nothing
	// Dialer replaces the TCP dial (JavaMail's socket factory hook); with
	// socketFactory.fallback a failing hook falls back to a direct dial.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Hostname is mailq's configured hostname: the EHLO name (and NTLM
	// workstation) when the route sets no localhost (Settings.EHLOName).
	Hostname string
	// DataTermTimeout is the minimum wait for the reply to the final dot;
	// 0 = MinDataTermTimeout (RFC 5321 §4.5.3.2.6). Tests shorten it.
	DataTermTimeout time.Duration
	// ConnectHost, when set, is where the TCP connection goes (an address
	// chosen by MX resolution) instead of Settings.Host, which still names
	// the server for TLS (SNI and the certificate name check) and logs.
	ConnectHost string
}

// Conn is one SMTP session. It is not safe for concurrent use.
type Conn struct {
	s       *Settings
	opts    DialOptions
	log     zerolog.Logger
	host    string
	port    int
	readTO  time.Duration
	writeTO time.Duration

	path  dialPath
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	tls   *tls.ConnectionState
	ext   extensions
	ehlo  string
	authd bool
	tr    *transcript

	ctx       context.Context
	cancelled atomic.Bool
	broken    bool
}

// Dial connects and prepares a session: TCP (direct, proxy, SOCKS, hook),
// implicit TLS or STARTTLS, greeting, EHLO/HELO and AUTH. On error the
// socket is closed.
func Dial(ctx context.Context, s *Settings, opts DialOptions) (*Conn, error) {
	host, port := s.Endpoint()
	if s.RequiresAuth() && !hasPasswordSource(s) {
		// JavaMail §2.2 step 1: no socket is opened.
		return nil, &AuthError{Host: host, Err: errors.New("auth = true but no password source is configured")}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var creds credentials
	if s.WantsAuth() {
		var err error
		if creds, err = loadCredentials(s); err != nil {
			return nil, &AuthError{Host: host, Err: err}
		}
	}
	_, readTO, writeTO := s.Timeouts()
	c := &Conn{s: s, opts: opts, log: opts.Logger, host: host, port: port, readTO: readTO, writeTO: writeTO}
	if opts.Transcript {
		c.tr = newTranscript()
	}
	nc, path, err := dialTransport(ctx, s, &c.opts)
	if err != nil {
		var ce *ConnectError
		sess := Session{Remote: net.JoinHostPort(host, strconv.Itoa(port))}
		if errors.As(err, &ce) {
			sess = Session{Remote: net.JoinHostPort(ce.Host, strconv.Itoa(ce.Port)), Proxy: ce.Via}
		}
		c.tr.note("connection failed: " + err.Error())
		return nil, &DialError{Session: sess, Transcript: c.tr.take(), Err: err}
	}
	c.path = path
	c.setConn(nc)
	c.tr.note("connected to " + c.RemoteAddr() + viaNote(path.via))
	done := c.bind(ctx)
	defer done()
	if err := c.open(creds); err != nil {
		c.drop()
		c.tr.note("session failed: " + err.Error())
		return nil, &DialError{Session: c.Session(), Transcript: c.tr.take(), Err: err}
	}
	return c, nil
}

func viaNote(via string) string {
	if via == "" {
		return ""
	}
	return " via " + via
}

// Session says where a connection went and how it was secured, for the
// attempt history.
type Session struct {
	Remote string // the address dialled: the peer's "ip:port" directly, the tunnel's target "host:port" through a proxy
	Proxy  string // "http proxy h:p", "socks5 h:p" or "dial hook"; "" when direct
	TLS    string // "TLS1.3"; "" for a plaintext session
	Cipher string // the negotiated suite, e.g. "TLS_AES_128_GCM_SHA256"
}

// DialError is what Dial returns once it knows where it was going: the
// failure itself (*ConnectError, *TLSError, *AuthError or *ProtocolError,
// reached with errors.As), the session as far as it got (a TLS session
// and the peer exist after an AUTH refusal) and the transcript so far.
type DialError struct {
	Session    Session
	Transcript []string
	Err        error
}

func (e *DialError) Error() string { return e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Session describes the connection (see Session).
func (c *Conn) Session() Session {
	s := Session{Remote: c.RemoteAddr(), TLS: c.TLSVersion()}
	if c.path.via != "" && c.path.via != "dial hook" {
		s.Proxy = c.path.via
	}
	s.Cipher = c.TLSCipher()
	return s
}

func (c *Conn) setConn(nc net.Conn) {
	c.nc = nc
	c.br = bufio.NewReader(nc)
	c.bw = bufio.NewWriterSize(timedWriter{c}, 32<<10)
}

// timedWriter applies the write timeout to every write on the socket
// (JavaMail writetimeout), including each buffer of message data.
type timedWriter struct{ c *Conn }

func (t timedWriter) Write(p []byte) (int, error) {
	t.c.nc.SetWriteDeadline(t.c.deadline(t.c.writeTO))
	return t.c.nc.Write(p)
}

// open runs everything after the TCP connect.
func (c *Conn) open(creds credentials) error {
	if c.s.SSLEnable {
		if err := c.handshake(); err != nil {
			return err
		}
	}
	g, err := c.read("")
	if err != nil {
		return err
	}
	if g.Code/100 != 2 {
		if c.s.QuitOnSessionReject {
			c.quit()
		}
		return &ProtocolError{Host: c.host, Reply: &g.Reply, Err: fmt.Errorf("bad greeting")}
	}
	c.ehlo = c.s.EHLOName(c.opts.Hostname, c.nc.LocalAddr())
	if err := c.hello(); err != nil {
		return err
	}
	if err := c.startTLS(); err != nil {
		return err
	}
	return c.authenticate(creds)
}

// hello sends EHLO (falling back to HELO when it is not 250) or, with
// ehlo = false, HELO only. Capabilities are replaced, never merged.
func (c *Conn) hello() error {
	c.ext = extensions{keywords: map[string]string{}}
	if c.s.UseEHLO() {
		r, err := c.cmd("EHLO " + c.ehlo)
		if err != nil {
			return err
		}
		if r.Code == 250 {
			c.ext = parseEHLO(r.Lines)
			return nil
		}
	}
	cmd := "HELO " + c.ehlo
	r, err := c.cmd(cmd)
	if err != nil {
		return err
	}
	if r.Code != 250 {
		return &ProtocolError{Host: c.host, Command: cmd, Reply: &r.Reply}
	}
	return nil
}

// startTLS upgrades with STARTTLS per starttls.enable/required (RFC 3207).
// A refusal or failed handshake fails the connection; afterwards the
// capabilities are forgotten and EHLO is sent again, and if that EHLO fails
// the connection fails (mailq; JavaMail keeps the pre-TLS capabilities).
func (c *Conn) startTLS() error {
	if c.tls != nil || !(c.s.StartTLSEnable || c.s.StartTLSRequired) {
		return nil
	}
	if !c.ext.has("STARTTLS") {
		if c.s.StartTLSRequired {
			return &TLSError{Host: c.host, Err: errors.New("STARTTLS is required but host does not support STARTTLS")}
		}
		c.log.Info().Str("route", c.s.Name).Str("host", c.host).Msg("server does not offer STARTTLS; continuing in clear text (starttls.required is false)")
		return nil
	}
	if err := c.starttlsCommand(); err != nil {
		return err
	}
	c.ext = extensions{keywords: map[string]string{}}
	cmd := "EHLO " + c.ehlo
	r, err := c.cmd(cmd)
	if err != nil {
		return err
	}
	if r.Code != 250 {
		return &ProtocolError{Host: c.host, Command: cmd, Reply: &r.Reply, Err: errors.New("EHLO after STARTTLS refused")}
	}
	c.ext = parseEHLO(r.Lines)
	return nil
}

// starttlsCommand sends STARTTLS, expects 220 and handshakes.
func (c *Conn) starttlsCommand() error {
	r, err := c.cmd("STARTTLS")
	if err != nil {
		return err
	}
	if r.Code != 220 {
		return &TLSError{Host: c.host, Reply: &r.Reply}
	}
	return c.handshake()
}

// handshake layers TLS over the socket. The buffered reader is replaced,
// so plaintext a server sent after its 220 is discarded (STARTTLS
// command injection, CVE-2011-0411 class).
func (c *Conn) handshake() error {
	cfg, err := c.s.tlsConfig(c.host)
	if err != nil {
		return &TLSError{Host: c.host, Err: err}
	}
	if n := c.br.Buffered(); n > 0 {
		c.tr.note(fmt.Sprintf("discarding %d plaintext bytes received before the TLS handshake", n))
	}
	tc := tls.Client(c.nc, cfg)
	if err := c.nc.SetDeadline(c.deadline(c.readTO)); err != nil {
		return &TLSError{Host: c.host, Err: err}
	}
	if err := tc.Handshake(); err != nil {
		return &TLSError{Host: c.host, Err: err}
	}
	st := tc.ConnectionState()
	c.tls = &st
	c.setConn(tc)
	c.tr.note("TLS established: " + c.TLSVersion() + " " + tls.CipherSuiteName(st.CipherSuite))
	return nil
}

// bind makes ctx cancel the I/O in flight; call the returned func when done.
func (c *Conn) bind(ctx context.Context) func() {
	c.ctx = ctx
	c.cancelled.Store(false)
	stop := context.AfterFunc(ctx, func() {
		c.cancelled.Store(true)
		c.nc.SetDeadline(time.Unix(1, 0))
	})
	return func() { stop(); c.ctx = nil }
}

// deadline is now+d, or the context's deadline when earlier.
func (c *Conn) deadline(d time.Duration) time.Time {
	t := time.Now().Add(d)
	if c.ctx != nil {
		if dl, ok := c.ctx.Deadline(); ok && dl.Before(t) {
			t = dl
		}
	}
	if c.cancelled.Load() {
		return time.Unix(1, 0)
	}
	return t
}

// checkCommand refuses CR, LF and NUL anywhere in a command line
// (CVE-2025-7962 class); nothing is written.
func checkCommand(line string) error {
	if i := strings.IndexAny(line, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("refusing to send a command containing byte 0x%02x (CR, LF or NUL): %q", line[i], truncate(line, 60))
	}
	return nil
}

// write queues a command line without flushing.
func (c *Conn) write(line string) error {
	if err := checkCommand(line); err != nil {
		return err
	}
	c.tr.client(line)
	c.bw.WriteString(line)
	_, err := c.bw.WriteString("\r\n")
	return err
}

// flush sends what is queued under the write timeout.
func (c *Conn) flush(cmd string) error {
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return &ProtocolError{Host: c.host, Command: cmd, Err: c.ioErr(err)}
	}
	return nil
}

// read reads one reply under timeout (read timeout, or longer for the
// final dot).
func (c *Conn) readWithin(cmd string, timeout time.Duration) (rawReply, error) {
	c.nc.SetReadDeadline(c.deadline(timeout))
	r, err := readReply(c.br)
	if err != nil {
		c.broken = true
		c.tr.note("read failed: " + err.Error())
		return r, &ProtocolError{Host: c.host, Command: redactCmd(cmd), Err: c.ioErr(err)}
	}
	c.tr.server(r.Code, r.Lines)
	return r, nil
}

func (c *Conn) read(cmd string) (rawReply, error) { return c.readWithin(cmd, c.readTO) }

// cmd sends one command and reads its reply.
func (c *Conn) cmd(line string) (rawReply, error) {
	if err := c.write(line); err != nil {
		return rawReply{}, err
	}
	if err := c.flush(line); err != nil {
		return rawReply{}, err
	}
	return c.read(line)
}

// ioErr names a cancelled context instead of a bare deadline error.
func (c *Conn) ioErr(err error) error {
	if c.ctx == nil {
		return err
	}
	if c.ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", c.ctx.Err(), err)
	}
	// The socket deadline may fire a moment before the context's own timer
	// for the same instant: a timeout at or past the context's deadline is
	// that deadline.
	if dl, ok := c.ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

func redactCmd(cmd string) string {
	if f := strings.Fields(cmd); len(f) > 0 && strings.EqualFold(f[0], "AUTH") {
		return "AUTH"
	}
	return cmd
}

// drop closes the socket without QUIT.
func (c *Conn) drop() {
	c.broken = true
	if c.nc != nil {
		c.nc.Close()
	}
}

// quit sends QUIT and, with quitwait (default true), waits for the reply.
func (c *Conn) quit() error {
	if err := c.write("QUIT"); err != nil {
		return err
	}
	if err := c.flush("QUIT"); err != nil {
		return err
	}
	if c.s.QuitWait == nil || *c.s.QuitWait {
		r, err := c.read("QUIT")
		if err != nil {
			return err
		}
		if r.Code != 221 {
			c.log.Debug().Str("host", c.host).Int("code", r.Code).Msg("unexpected reply to QUIT")
		}
	}
	return nil
}

// Probe checks that a pooled connection is still alive: NOOP, or RSET with
// userset. noop.strict (default true): only 250 is alive; otherwise any
// reply but 421. A dead connection is closed without QUIT.
func (c *Conn) Probe(ctx context.Context) bool {
	if c.broken || c.nc == nil {
		return false
	}
	done := c.bind(ctx)
	defer done()
	cmd := "NOOP"
	if c.s.UseRset {
		cmd = "RSET"
	}
	if c.pendingInput() {
		// Something arrived while the connection was idle: it answers
		// nothing, and would be taken for the probe's own reply.
		c.tr.note("the server sent a reply out of turn while idle; closing the connection")
		c.drop()
		return false
	}
	r, err := c.cmd(cmd)
	alive := err == nil && !c.pendingInput()
	if alive {
		if c.s.NoopStrict == nil || *c.s.NoopStrict {
			alive = r.Code == 250
		} else {
			alive = r.Code != 421
		}
	}
	if !alive {
		c.drop()
	}
	return alive
}

// Ready reports, without a round trip, whether a pooled connection can
// carry the next transaction now: it is open and the server has sent
// nothing since its last reply (a 421 or a close while idle shows as
// pending input, and the connection is closed). Send leaves a session
// ready for the next MAIL: the reply to the end of data ends the
// transaction (RFC 5321 §4.1.1.4) and a failed transaction Send has
// already reset with RSET (§4.1.1.5). So a connection used a moment ago
// needs neither RSET nor a probe; one that sat idle gets Probe, as the
// server or a middlebox may have dropped it silently.
func (c *Conn) Ready() bool {
	if c.broken || c.nc == nil {
		return false
	}
	if c.pendingInput() {
		c.tr.note("the server sent a reply out of turn while idle; closing the connection")
		c.drop()
		return false
	}
	return true
}

// Reset sends RSET between messages; anything but 250 leaves the
// connection unusable.
func (c *Conn) Reset() error {
	if c.broken {
		return &ProtocolError{Host: c.host, Command: "RSET", Err: errors.New("connection is closed")}
	}
	r, err := c.cmd("RSET")
	if err != nil {
		c.drop()
		return err
	}
	if r.Code != 250 {
		c.drop()
		return &ProtocolError{Host: c.host, Command: "RSET", Reply: &r.Reply}
	}
	if c.checkInSync(); c.broken {
		return &ProtocolError{Host: c.host, Command: "RSET", Reply: &r.Reply, Err: errReplyOutOfTurn}
	}
	return nil
}

// Close sends QUIT (waiting for the reply unless quitwait = false) and
// closes the socket; the socket is closed even when QUIT fails.
func (c *Conn) Close() error {
	if c.nc == nil {
		return nil
	}
	var err error
	if !c.broken {
		err = c.quit()
	}
	c.drop()
	return err
}

// RemoteAddr is the peer actually connected ("ip:port"), or through a
// proxy the target host:port the tunnel was asked for (with
// socketFactory.port, that port, not the route's).
func (c *Conn) RemoteAddr() string {
	proxied := c.path.via != "" && c.path.via != "dial hook"
	if !proxied && c.nc != nil {
		return c.nc.RemoteAddr().String()
	}
	if c.path.target != "" {
		return c.path.target
	}
	return net.JoinHostPort(c.host, strconv.Itoa(c.port))
}

// TLSVersion is "TLS1.2" / "TLS1.3", or "" for a plaintext session.
func (c *Conn) TLSVersion() string {
	if c.tls == nil {
		return ""
	}
	return strings.ReplaceAll(tls.VersionName(c.tls.Version), " ", "")
}

// TLSCipher is the negotiated cipher suite's IANA name, or "" when plain.
func (c *Conn) TLSCipher() string {
	if c.tls == nil {
		return ""
	}
	return tls.CipherSuiteName(c.tls.CipherSuite)
}

// Transcript returns the lines recorded since the last TakeTranscript
// (DialOptions.Transcript), the oldest dropped beyond a few KiB.
func (c *Conn) Transcript() []string { return c.tr.snapshot() }

// TakeTranscript returns what Transcript does and starts afresh, so each
// message sent over the connection gets its own part.
func (c *Conn) TakeTranscript() []string { return c.tr.take() }

// Extensions returns the EHLO keywords in force (upper-case → parameters).
func (c *Conn) Extensions() map[string]string { return maps.Clone(c.ext.keywords) }

// Authenticated reports whether AUTH succeeded on this connection.
func (c *Conn) Authenticated() bool { return c.authd }
