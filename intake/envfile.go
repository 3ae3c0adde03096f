package intake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
	"mailq/esmtp"
	"mailq/queue"
)

// Limits on the envelope part of a maildrop file, which is untrusted input.
const (
	maxEnvelopeLine  = 4096    // one sender or recipient line with its parameters
	maxEnvelopeBytes = 1 << 20 // all envelope lines together
)

// FormatError is a maildrop file that does not follow the format.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return "bad maildrop file: " + e.Reason }

func formatErr(f string, a ...any) error { return &FormatError{fmt.Sprintf(f, a...)} }

// ParseEnvelopeFile reads the envelope lines of a maildrop envelope file (the
// format is described at DropFile) and returns the envelope and a reader
// positioned at the start of the message. Parameters are decoded (ENVID and
// ORCPT from xtext) but the envelope is not validated: call ValidateEnvelope.
func ParseEnvelopeFile(r io.Reader) (queue.Envelope, io.Reader, error) {
	var env queue.Envelope
	br := bufio.NewReaderSize(r, maxEnvelopeLine+2)
	total := 0
	for lineNo := 1; ; lineNo++ {
		line, err := readEnvelopeLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if lineNo == 1 {
					return env, nil, formatErr("the file is empty")
				}
				return env, nil, formatErr("no empty line after the recipients (line %d)", lineNo)
			}
			return env, nil, fmt.Errorf("%w (line %d)", err, lineNo)
		}
		if total += len(line) + 1; total > maxEnvelopeBytes {
			return env, nil, formatErr("the envelope lines are longer than %d bytes", maxEnvelopeBytes)
		}
		if lineNo == 1 {
			addr, params, err := splitEnvelopeLine(line)
			if err != nil {
				return env, nil, fmt.Errorf("sender line: %w", err)
			}
			if addr == "<>" {
				addr = ""
			}
			env.Sender = unbracket(addr)
			if err := parseSenderParams(&env, params); err != nil {
				return env, nil, err
			}
			continue
		}
		if line == "" {
			break
		}
		addr, params, err := splitEnvelopeLine(line)
		if err != nil {
			return env, nil, fmt.Errorf("recipient line %d: %w", lineNo, err)
		}
		if addr == "" {
			return env, nil, formatErr("line %d has parameters but no recipient address", lineNo)
		}
		spec := queue.RecipientSpec{Address: unbracket(addr)}
		if err := parseRecipientParams(&spec, params); err != nil {
			return env, nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		env.Recipients = append(env.Recipients, spec)
	}
	if len(env.Recipients) == 0 {
		return env, nil, formatErr("no recipient lines between the sender line and the empty line")
	}
	return env, br, nil
}

// readEnvelopeLine reads one LF-terminated line without its line ending.
func readEnvelopeLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", formatErr("an envelope line is longer than %d bytes", maxEnvelopeLine)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", io.EOF // an unterminated last line means the envelope never ended
		}
		return "", err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return string(line), nil
}

// splitEnvelopeLine separates the address from its parameters: the first
// space outside a quoted local part starts them.
func splitEnvelopeLine(line string) (addr string, params []string, err error) {
	i := 0
	if strings.HasPrefix(line, `"`) || strings.HasPrefix(line, `<"`) {
		i = strings.IndexByte(line, '"') + 1
		for ; i < len(line) && line[i] != '"'; i++ {
			if line[i] == '\\' {
				i++
			}
		}
		if i >= len(line) {
			return "", nil, formatErr("unterminated quoted local part in %s", quoteAddress(line))
		}
	}
	sp := strings.IndexByte(line[i:], ' ')
	if sp < 0 {
		return line, nil, nil
	}
	return line[:i+sp], strings.Fields(line[i+sp:]), nil
}

// unbracket removes one pair of surrounding angle brackets.
func unbracket(a string) string {
	if len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>' {
		return a[1 : len(a)-1]
	}
	return a
}

func parseSenderParams(env *queue.Envelope, params []string) error {
	seen := map[string]bool{}
	for _, p := range params {
		key, val, err := splitParam(p, seen)
		if err != nil {
			return err
		}
		switch key {
		case "RET":
			env.Ret = val
		case "ENVID":
			if env.EnvID, err = esmtp.DecodeXtext(val); err != nil {
				return formatErr("ENVID: %v", err)
			}
		default:
			return formatErr("unknown sender parameter %q (RET and ENVID are allowed)", key)
		}
	}
	return nil
}

func parseRecipientParams(spec *queue.RecipientSpec, params []string) error {
	seen := map[string]bool{}
	for _, p := range params {
		key, val, err := splitParam(p, seen)
		if err != nil {
			return err
		}
		switch key {
		case "NOTIFY":
			spec.Notify = val
		case "ORCPT":
			o, err := esmtp.DecodeORCPTParam(val)
			if err != nil {
				return formatErr("%v", err)
			}
			spec.ORCPT = o.String()
		default:
			return formatErr("unknown recipient parameter %q (NOTIFY and ORCPT are allowed)", key)
		}
	}
	return nil
}

func splitParam(p string, seen map[string]bool) (key, val string, err error) {
	key, val, ok := strings.Cut(p, "=")
	key = strings.ToUpper(key)
	if !ok || key == "" || val == "" {
		return "", "", formatErr("parameter %q is not KEY=VALUE", p)
	}
	if seen[key] {
		return "", "", formatErr("parameter %s is repeated", key)
	}
	seen[key] = true
	return key, val, nil
}

// ParseEMLFile reads a bare RFC 5322 message (the maildrop's .eml format):
// the sender comes from Sender:, else From:; the recipients from To, Cc and
// Bcc. It returns the message with its Bcc: fields removed and every other
// header field kept byte for byte. The envelope is not validated.
func ParseEMLFile(r io.Reader) (queue.Envelope, io.Reader, error) {
	var env queue.Envelope
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return env, nil, formatErr("cannot read the message header: %v", err)
	}
	mh := mailHeader(h)
	if env.Sender, err = HeaderSender(mh); err != nil {
		return env, nil, &FormatError{err.Error()}
	}
	rcpts, err := ParseHeaderRecipients(mh)
	if err != nil {
		return env, nil, &FormatError{err.Error()}
	}
	if len(rcpts) == 0 {
		return env, nil, formatErr("the message has no To:, Cc: or Bcc: recipients")
	}
	for _, a := range rcpts {
		env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: a})
	}
	StripBcc(&mh)
	var head bytes.Buffer
	if err := textproto.WriteHeader(&head, mh.Header.Header); err != nil {
		return env, nil, fmt.Errorf("rewrite header: %w", err)
	}
	return env, io.MultiReader(&head, br), nil
}
