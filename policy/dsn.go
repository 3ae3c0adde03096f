package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"mailq/esmtp"
)

// Notice is everything a delivery status notification says. BuildDSN turns
// it into an RFC 3464 message; delivery enqueues that from <> to Sender.
type Notice struct {
	ReportingMTA string     // our hostname: Reporting-MTA and the From domain
	Kind         NoticeKind // "" = derived from the recipients' actions
	EnvID        string     // ENVID from submission, "" if none
	Arrival      time.Time
	Sender       string // envelope sender of the original; receives the DSN
	Ret          string // "FULL" attaches the whole original; anything else only its header
	MessageID    string // queue id of the original, for the human-readable text
	Recipients   []NoticeRecipient
	Now          time.Time // Date of the DSN
}

// Actions of a NoticeRecipient (RFC 3464 §2.3.3).
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionRelayed   = "relayed"
	ActionDelivered = "delivered"
)

// NoticeRecipient is one per-recipient block of the report.
type NoticeRecipient struct {
	Address        string
	ORCPT          string // original recipient as submitted ("rfc822;a@b" or a bare address), "" if none
	Action         string // ActionFailed, ActionDelayed, ActionRelayed, ActionDelivered
	Status         string // RFC 3463 code, e.g. "5.1.1"
	RemoteMTA      string // host that answered, "" if none did
	Diagnostic     string // Decision.Diagnostic; "smtp; ..." or plain text
	LastAttempt    time.Time
	WillRetryUntil time.Time // for delayed
}

// BuildDSN composes an RFC 3464 delivery status notification as a
// multipart/report (RFC 6522) with report-type=delivery-status: a text/plain
// explanation, the message/delivery-status part, and the original's header
// block (text/rfc822-headers) or, with Ret "FULL", the whole original
// (message/rfc822). original is streamed and may be nil (no third part).
// When its header cannot be parsed the third part is left out (RFC 6522
// makes it optional) and the explanation says so, so a bounce always goes out.
// Line endings of the result are CRLF.
func BuildDSN(n Notice, original io.Reader) ([]byte, error) {
	if n.ReportingMTA == "" {
		return nil, fmt.Errorf("building DSN for %s: no reporting MTA (set hostname in the configuration)", n.MessageID)
	}
	if IsNullSender(n.Sender) {
		return nil, fmt.Errorf("building DSN for %s: the sender is <>, which never receives notices (RFC 3461 §6.2)", n.MessageID)
	}
	if len(n.Recipients) == 0 {
		return nil, fmt.Errorf("building DSN for %s: no recipients to report", n.MessageID)
	}
	kind := n.Kind
	if kind == "" {
		kind = kindOf(n.Recipients)
	}
	full := strings.EqualFold(strings.TrimSpace(n.Ret), "FULL")

	// Read the original's header before writing anything, so a broken one
	// can be mentioned in the explanation.
	var (
		origHeader textproto.Header
		origBody   *bufio.Reader
		origErr    error
	)
	if original != nil {
		origBody = bufio.NewReader(original)
		origHeader, origErr = textproto.ReadHeader(origBody)
	}

	var out bytes.Buffer
	var h mail.Header
	// textproto writes fields in reverse order of addition.
	h.Set("Auto-Submitted", "auto-replied") // RFC 3834 §5
	h.SetContentType("multipart/report", map[string]string{"report-type": "delivery-status"})
	h.SetMessageID(fmt.Sprintf("dsn.%s.%d@%s", safeID(n.MessageID), n.Now.UnixNano(), n.ReportingMTA))
	h.SetDate(n.Now)
	h.SetSubject(subjectOf(kind))
	h.SetAddressList("To", []*mail.Address{{Address: strings.Trim(n.Sender, "<>")}})
	h.SetAddressList("From", []*mail.Address{{Name: "Mail Delivery System", Address: "MAILER-DAEMON@" + n.ReportingMTA}})
	w, err := message.CreateWriter(&out, h.Header)
	if err != nil {
		return nil, fmt.Errorf("building DSN for %s: %w", n.MessageID, err)
	}

	// Fields come out in reverse order of addition.
	var text message.Header
	text.Set("Content-Description", "Notification")
	text.Set("Content-Transfer-Encoding", "8bit")
	text.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	if err := writePart(w, text, func(pw io.Writer) error {
		return writeExplanation(pw, n, kind, origErr)
	}); err != nil {
		return nil, fmt.Errorf("building DSN for %s: explanation: %w", n.MessageID, err)
	}

	var status message.Header
	status.Set("Content-Description", "Delivery report")
	global := needsGlobal(n)
	if global {
		// RFC 6533 §6: UTF-8 addresses need the internationalized report type.
		status.Set("Content-Transfer-Encoding", "8bit")
		status.SetContentType("message/global-delivery-status", nil)
	} else {
		status.SetContentType("message/delivery-status", nil)
	}
	if err := writePart(w, status, func(pw io.Writer) error {
		return writeDeliveryStatus(pw, n, global)
	}); err != nil {
		return nil, fmt.Errorf("building DSN for %s: delivery status: %w", n.MessageID, err)
	}

	if original != nil && origErr == nil {
		var orig message.Header
		if full {
			orig.Set("Content-Description", "Undelivered message")
			orig.SetContentType("message/rfc822", nil)
		} else {
			orig.Set("Content-Description", "Undelivered message headers")
			orig.SetContentType("text/rfc822-headers", nil)
		}
		if err := writePart(w, orig, func(pw io.Writer) error {
			if err := textproto.WriteHeader(pw, origHeader); err != nil {
				return err
			}
			if !full {
				return nil
			}
			return copyCRLF(pw, origBody)
		}); err != nil {
			return nil, fmt.Errorf("building DSN for %s: attaching the original: %w", n.MessageID, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("building DSN for %s: %w", n.MessageID, err)
	}
	return out.Bytes(), nil
}

func writePart(w *message.Writer, h message.Header, body func(io.Writer) error) error {
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if err := body(pw); err != nil {
		return err
	}
	return pw.Close()
}

func kindOf(rs []NoticeRecipient) NoticeKind {
	kind := NoticeSuccess
	for _, r := range rs {
		switch r.Action {
		case ActionFailed:
			return NoticeFailure
		case ActionDelayed:
			kind = NoticeDelay
		}
	}
	return kind
}

func subjectOf(k NoticeKind) string {
	switch k {
	case NoticeFailure:
		return "Undelivered Mail Returned to Sender"
	case NoticeDelay:
		return "Delayed Mail (still being retried)"
	default:
		return "Successful Mail Delivery Report"
	}
}

// writeExplanation writes the human-readable first part.
func writeExplanation(w io.Writer, n Notice, kind NoticeKind, origErr error) error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	line("This is the mail system at host %s.", oneLine(n.ReportingMTA))
	line("")
	id := ""
	if n.MessageID != "" {
		id = " (queue id " + oneLine(n.MessageID) + ")"
	}
	switch kind {
	case NoticeFailure:
		line("Your message%s could not be delivered to one or more recipients.", id)
		line("It has been returned with this report. Recipients not listed here")
		line("were delivered or are still being tried.")
	case NoticeDelay:
		line("Your message%s has not yet been delivered to the recipients below.", id)
		line("This is only a warning: the mail system keeps trying, and you do not")
		line("need to send the message again.")
	default:
		line("Your message%s was delivered to the recipients below, as you asked", id)
		line("to be told.")
	}
	line("")
	for _, r := range n.Recipients {
		line("<%s>: %s (status %s)", oneLine(r.Address), oneLine(r.Action), oneLine(r.Status))
		if r.RemoteMTA != "" {
			line("    host %s said: %s", oneLine(r.RemoteMTA), humanDiagnostic(r.Diagnostic))
		} else if r.Diagnostic != "" {
			line("    %s", humanDiagnostic(r.Diagnostic))
		}
		if r.Status == StatusExpired {
			line("    The message stayed in the queue too long without being delivered.")
		}
		if r.Action == ActionDelayed && !r.WillRetryUntil.IsZero() {
			line("    Delivery will be retried until %s.", r.WillRetryUntil.UTC().Format(time.RFC1123Z))
		}
	}
	if origErr != nil {
		line("")
		line("The original message's header could not be read (%s),", oneLine(origErr.Error()))
		line("so it is not attached to this report.")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeDeliveryStatus writes the message/delivery-status body (RFC 3464 §2):
// the per-message fields, then one block per recipient, blank-line separated.
// With global, addresses are typed utf-8 (RFC 6533 §3).
func writeDeliveryStatus(w io.Writer, n Notice, global bool) error {
	addrType := "rfc822; "
	if global {
		addrType = "utf-8; "
	}
	var b strings.Builder
	field(&b, "Reporting-MTA", "dns; "+n.ReportingMTA)
	if n.EnvID != "" {
		field(&b, "Original-Envelope-Id", n.EnvID)
	}
	if !n.Arrival.IsZero() {
		field(&b, "Arrival-Date", n.Arrival.Format(time.RFC1123Z))
	}
	for _, r := range n.Recipients {
		b.WriteString("\r\n")
		if r.ORCPT != "" {
			field(&b, "Original-Recipient", withAddrType(r.ORCPT))
		}
		field(&b, "Final-Recipient", addrType+r.Address)
		field(&b, "Action", r.Action)
		field(&b, "Status", r.Status)
		if r.RemoteMTA != "" {
			field(&b, "Remote-MTA", "dns; "+r.RemoteMTA)
		}
		if r.Diagnostic != "" {
			field(&b, "Diagnostic-Code", withDiagnosticType(r.Diagnostic))
		}
		if !r.LastAttempt.IsZero() {
			field(&b, "Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z))
		}
		if r.Action == ActionDelayed && !r.WillRetryUntil.IsZero() {
			field(&b, "Will-Retry-Until", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// field writes "Name: value" folded at spaces to keep lines near 78
// characters (RFC 5322 §2.2.3); the value is made one line first.
func field(b *strings.Builder, name, value string) {
	value = oneLine(value)
	lineLen := len(name) + 1
	b.WriteString(name + ":")
	for i, word := range strings.Split(value, " ") {
		if i > 0 && lineLen+1+len(word) > 78 {
			b.WriteString("\r\n")
			lineLen = 0
		}
		b.WriteString(" " + word)
		lineLen += 1 + len(word)
	}
	b.WriteString("\r\n")
}

// needsGlobal reports whether a recipient address is not ASCII, which only
// the RFC 6533 message/global-delivery-status type can carry.
func needsGlobal(n Notice) bool {
	for _, r := range n.Recipients {
		if !esmtp.IsASCII(r.Address) || !esmtp.IsASCII(r.ORCPT) {
			return true
		}
	}
	return false
}

// humanDiagnostic drops the "smtp;" type from a diagnostic for the
// explanation, where a reader wants only what the server said.
func humanDiagnostic(d string) string {
	d = oneLine(d)
	if t, rest, ok := strings.Cut(d, ";"); ok && strings.EqualFold(strings.TrimSpace(t), "smtp") {
		return strings.TrimSpace(rest)
	}
	return d
}

// withAddrType renders a stored ORCPT ("type;address", decoded: one
// stored form, esmtp.ORCPT) as an Original-Recipient field value, which
// RFC 3464 §2.3.1 wants decoded, "type; address"; a bare address (stored
// before the type was kept) gets rfc822.
func withAddrType(orcpt string) string {
	o := esmtp.ParseORCPT(orcpt)
	return o.Type + "; " + o.Address
}

// withDiagnosticType gives a diagnostic its RFC 3464 §2.3.6 diagnostic-type:
// an SMTP reply already starts with "smtp;"; anything else (a connection
// failure described by mailq) is typed X-mailq.
func withDiagnosticType(d string) string {
	if t, _, ok := strings.Cut(d, ";"); ok && isAtom(t) {
		return d
	}
	return "X-mailq; " + d
}

func isAtom(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '.' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}

// safeID keeps a queue id usable inside a Message-ID's left part.
func safeID(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r == '-' || r == '.' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// copyCRLF copies r to w turning bare LF line endings into CRLF, so the
// attached original matches the rest of the DSN.
func copyCRLF(w io.Writer, r *bufio.Reader) error {
	bw := bufio.NewWriter(w)
	prevCR := false
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c == '\n' && !prevCR {
			bw.WriteByte('\r')
		}
		bw.WriteByte(c)
		prevCR = c == '\r'
	}
	return bw.Flush()
}
