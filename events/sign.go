package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers (docs/events.md "Verifying a webhook").
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>": the
	// HMAC, keyed with the webhook's secret, of the decimal timestamp, a
	// ".", and the exact request body.
	SignatureHeader = "Mailq-Signature"
	// EventIDHeader repeats the event's id, for deduplication before parsing.
	EventIDHeader = "Mailq-Event-Id"
)

// Sign returns the SignatureHeader value for body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac(secret, t, body))
}

func mac(secret []byte, t string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a SignatureHeader value against body, as a receiving
// application does: the HMAC must match (compared in constant time) and the
// timestamp must be within tolerance of now, so a captured request cannot
// be replayed later.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var t, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = v
		case "v1":
			sig = v
		}
	}
	if t == "" || sig == "" {
		return errors.New("events: signature header lacks t= or v1=")
	}
	ts, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return fmt.Errorf("events: signature timestamp %q is not a number", t)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("events: signature timestamp is %s away from now (tolerance %s)", d.Round(time.Second), tolerance)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return errors.New("events: signature v1 is not hex")
	}
	if !hmac.Equal(got, mac(secret, t, body)) {
		return errors.New("events: signature does not match the body")
	}
	return nil
}
