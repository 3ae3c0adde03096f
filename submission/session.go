package submission

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"mailq/intake"
	"mailq/metrics"
	"mailq/queue"
)

type backend struct{ l *Listener }

var sessionSeq atomic.Uint64

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	var rnd [4]byte
	rand.Read(rnd[:])
	return &session{
		l:    b.l,
		conn: c,
		id:   fmt.Sprintf("%s%d", hex.EncodeToString(rnd[:]), sessionSeq.Add(1)),
	}, nil
}

// session is one SMTP session; go-smtp calls it from one goroutine at a time.
type session struct {
	l        *Listener
	conn     *smtp.Conn
	id       string // for Received: and logs
	txn      int
	authUser string
	env      queue.Envelope
	utf8     bool // MAIL FROM carried SMTPUTF8
}

// Replies (RFC 3463 enhanced codes).
var (
	errTLSRequired  = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errTooLarge     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message exceeds the maximum message size"}
	errLineTooLong  = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message has a line longer than 2000 octets (RFC 5321 4.5.3.1.6 allows 1000)"}
	errStoreFailed  = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Cannot store the message now; it was not queued, try again later"}
)

func (s *session) isTLS() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

func (s *session) remoteIP() string {
	if a, ok := s.conn.Conn().RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return s.conn.Conn().RemoteAddr().String()
}

// AuthMechanisms is offered only with an auth_file (go-smtp hides AUTH before
// TLS when require_tls is set).
func (s *session) AuthMechanisms() []string {
	if s.l.creds == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.l.creds == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	check := func(username, password string) error {
		if !s.l.creds.verify(username, password) {
			// Never log the password; the user name helps the operator.
			s.l.opts.Logger.Warn().Str("session", s.id).Str("remote", s.remoteIP()).Str("user", username).Msg("submission: authentication failed")
			return smtp.ErrAuthFailed
		}
		s.authUser = username
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed // no proxy authorization
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(check), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.l.opts.RequireTLS && !s.isTLS() {
		return errTLSRequired
	}
	if s.l.opts.RequireAuth && s.authUser == "" {
		return errAuthRequired
	}
	s.env = queue.Envelope{Source: "smtp"}
	s.utf8 = opts != nil && opts.UTF8
	if from != "" {
		utf, err := intake.ValidateMailbox(from)
		if err != nil {
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address: " + reasonOf(err)}
		}
		if utf && !s.utf8 {
			return errNeedsUTF8
		}
	}
	s.env.Sender = from
	if opts != nil {
		s.env.Ret = string(opts.Return)
		s.env.EnvID = opts.EnvelopeID
		s.env.SMTPUTF8 = opts.UTF8
		if err := intake.ValidateEnvID(s.env.EnvID); err != nil {
			return paramError(err)
		}
	}
	return nil
}

// RFC 6531 §3.4: a non-ASCII address without SMTPUTF8 is refused with 553 5.6.7.
var errNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address requires the SMTPUTF8 parameter on MAIL FROM"}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	utf, err := intake.ValidateMailbox(to)
	if err != nil {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address: " + reasonOf(err)}
	}
	if utf && !s.utf8 {
		return errNeedsUTF8
	}
	if f := s.l.opts.RefuseRecipient; f != nil {
		if reason, refuse := f(to); refuse {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: reason}
		}
	}
	spec := queue.RecipientSpec{Address: to}
	if opts != nil {
		var notify []string
		for _, n := range opts.Notify {
			notify = append(notify, string(n))
		}
		spec.Notify = strings.Join(notify, ",")
		if opts.OriginalRecipient != "" {
			spec.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	if spec.Notify, err = intake.NormalizeNotify(spec.Notify); err != nil {
		return paramError(err)
	}
	if err := intake.ValidateORCPT(spec.ORCPT); err != nil {
		return paramError(err)
	}
	s.env.Recipients = append(s.env.Recipients, spec)
	return nil
}

func (s *session) Data(r io.Reader) error {
	env := s.env
	env.Recipients = append([]queue.RecipientSpec(nil), s.env.Recipients...)
	if err := intake.ValidateEnvelope(&env); err != nil {
		return envelopeError(err)
	}
	s.txn++
	with := "ESMTP"
	if s.isTLS() {
		with += "S"
	}
	if s.authUser != "" {
		with += "A" // RFC 3848
	}
	if env.SMTPUTF8 {
		with = "UTF8" + strings.TrimPrefix(with, "E") // RFC 6531 §3.7.4: UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA
	}
	from := fmt.Sprintf("%s ([%s])", s.conn.Hostname(), s.remoteIP())
	received := intake.Received(from, s.l.opts.Hostname, with, fmt.Sprintf("%s.%d", s.id, s.txn), s.l.opts.Now())
	src := &errTracker{r: intake.LimitBody(r, s.l.opts.MaxMessageSize)}
	msg := intake.NewArrivalReader(io.MultiReader(strings.NewReader(received), src))
	id, err := s.l.opts.Store.Enqueue(env, msg)
	if err != nil {
		if src.err != nil {
			return readError(src.err)
		}
		s.l.opts.Logger.Error().Err(err).Str("session", s.id).Msg("submission: the queue cannot take the message; replied 452")
		return errStoreFailed
	}
	metrics.Enqueued.WithLabelValues("smtp").Inc()
	env.Source = "smtp"
	intake.LogArrival(s.l.opts.Logger.With().Str("session", s.id).Logger(),
		intake.Arrival{ID: id, Env: env, Client: s.remoteIP(), User: s.authUser, Body: msg})
	// go-smtp writes a returned *SMTPError as the reply: this is how the
	// 250 carries the queue id.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + string(id)}
}

func (s *session) Reset() {
	s.env = queue.Envelope{}
	s.utf8 = false
}

func (s *session) Logout() error { return nil }

// errTracker remembers the first read error other than io.EOF, so a failed
// Enqueue can be told apart: the client's fault or the store's.
type errTracker struct {
	r   io.Reader
	err error
}

func (t *errTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

func readError(err error) error {
	var se *smtp.SMTPError
	switch {
	case errors.Is(err, intake.ErrTooLarge), errors.Is(err, smtp.ErrDataTooLarge):
		return errTooLarge
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong
	case errors.As(err, &se):
		return se
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Reading the message failed; it was not queued"}
}

func reasonOf(err error) string {
	var ae *intake.AddressError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return err.Error()
}

func paramError(err error) error {
	return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: err.Error()}
}

func envelopeError(err error) error {
	var ae *intake.AddressError
	if errors.As(err, &ae) {
		code := smtp.EnhancedCode{5, 1, 3}
		if ae.Sender {
			code = smtp.EnhancedCode{5, 1, 7}
		}
		return &smtp.SMTPError{Code: 553, EnhancedCode: code, Message: "Bad address: " + ae.Reason}
	}
	if errors.Is(err, intake.ErrNoRecipients) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	return paramError(err)
}
