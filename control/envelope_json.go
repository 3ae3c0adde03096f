package control

import (
	"strconv"
	"unicode/utf8"

	"mailq/queue"
)

// appendEnvelope appends env as encoding/json encodes it (the same names,
// the same omitempty fields), without reflection: encoding/json builds its
// encoders on first use, most of a millisecond in a process that encodes
// one envelope and exits (sendmail). TestAppendEnvelopeIsJSONMarshal
// keeps the two in step, field for field.
func appendEnvelope(b []byte, env queue.Envelope) []byte {
	b = append(b, `{"sender":`...)
	b = appendJSONString(b, env.Sender)
	b = append(b, `,"recipients":`...)
	if env.Recipients == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range env.Recipients {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"address":`...)
			b = appendJSONString(b, r.Address)
			b = appendOmitEmpty(b, "notify", r.Notify)
			b = appendOmitEmpty(b, "orcpt", r.ORCPT)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendOmitEmpty(b, "envid", env.EnvID)
	b = appendOmitEmpty(b, "ret", env.Ret)
	if env.SMTPUTF8 {
		b = append(b, `,"smtputf8":true`...)
	}
	b = appendOmitEmpty(b, "source", env.Source)
	b = appendOmitEmpty(b, "message_id", env.MessageID)
	return append(b, '}')
}

// appendOmitEmpty appends `,"name":value` unless value is empty.
func appendOmitEmpty(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

// appendJSONString appends s as a JSON string (RFC 8259 §7), escaped as
// encoding/json escapes it: control characters, '"', '\\', the HTML
// characters <, > and &, U+2028 and U+2029, and each byte of invalid UTF-8
// as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, `\u202`...)
				b = strconv.AppendInt(b, int64(r&0xf), 16)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
