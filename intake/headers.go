package intake

import (
	"fmt"
	"io"
	"mime"
	netmail "net/mail"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// addressParser parses address lists like go-message's mail.ParseAddressList,
// but a display name in a charset we cannot decode is kept undecoded instead
// of failing the whole header: we only need the addresses.
var addressParser = netmail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		if message.CharsetReader != nil {
			if r, err := message.CharsetReader(charset, input); err == nil {
				return r, nil
			}
		}
		return input, nil
	},
}}

// ParseHeaderRecipients returns the addresses of To, Cc and Bcc in that
// order, without duplicates (compared exactly). Groups ("team: a@x, b@y;")
// are flattened and RFC 2047 encoded display names are decoded and dropped;
// only addresses are returned. Each address is checked with ValidateMailbox.
func ParseHeaderRecipients(h mail.Header) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, key := range []string{"To", "Cc", "Bcc"} {
		for _, field := range h.Values(key) {
			addrs, err := parseAddressField(h, key, field)
			if err != nil {
				return nil, err
			}
			for _, a := range addrs {
				if _, err := ValidateMailbox(a); err != nil {
					return nil, fmt.Errorf("in the %s: header: %w", key, err)
				}
				if !seen[a] {
					seen[a] = true
					out = append(out, a)
				}
			}
		}
	}
	return out, nil
}

// parseAddressField parses one field value; an empty field (e.g. "Bcc:") has
// no addresses.
func parseAddressField(_ mail.Header, key, field string) ([]string, error) {
	if isBlank(field) {
		return nil, nil
	}
	list, err := addressParser.ParseList(field)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the %s: header %q: %w", key, field, err)
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out, nil
}

// HeaderSender returns the address of Sender:, else of the first From:
// mailbox, for a bare message (the maildrop's .eml format).
func HeaderSender(h mail.Header) (string, error) {
	for _, key := range []string{"Sender", "From"} {
		field := h.Get(key)
		if isBlank(field) {
			continue
		}
		list, err := addressParser.ParseList(field)
		if err != nil {
			return "", fmt.Errorf("cannot parse the %s: header %q: %w", key, field, err)
		}
		if len(list) > 0 {
			return list[0].Address, nil
		}
	}
	return "", fmt.Errorf("the message has neither a Sender: nor a From: address")
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' {
			return false
		}
	}
	return true
}

// StripBcc removes every Bcc: field (RFC 5322 §3.6.3: Bcc recipients must
// not be disclosed to the others).
func StripBcc(h *mail.Header) {
	h.Del("Bcc")
}

func mailHeader(h textproto.Header) mail.Header {
	return mail.Header{Header: message.Header{Header: h}}
}
