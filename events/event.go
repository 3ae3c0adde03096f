// Package events tells sending applications what happened to their mail:
// one event per arrival and per recipient outcome, stored with the change
// that caused it, posted to webhooks (signed, retried, in order per
// message) and streamed to `mailqctl events`.
package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"mailq/esmtp"
	"mailq/queue"
)

// Type is what happened.
type Type string

const (
	Queued    Type = "queued"    // the message was accepted (one event per recipient)
	Delivered Type = "delivered" // the next hop accepted the recipient
	Deferred  Type = "deferred"  // a temporary failure; retried at next_attempt
	Bounced   Type = "bounced"   // failed permanently (reason: "", "operator" or "suppressed")
	Expired   Type = "expired"   // still failing temporarily at the end of its lifetime (RFC 3463 4.4.7); bounced
	Delayed   Type = "delayed"   // a delay warning (RFC 3464 Action: delayed) was sent to the sender
	Deleted   Type = "deleted"   // the operator deleted the message; nothing more happens
)

// AllTypes lists every event type, for configuration checks.
var AllTypes = []Type{Queued, Delivered, Deferred, Bounced, Expired, Delayed, Deleted}

// Reply is the server reply (or mailq's own verdict) behind an outcome.
type Reply struct {
	Code     int    `json:"code,omitempty"`
	Enhanced string `json:"enhanced,omitempty"` // RFC 3463
	Text     string `json:"text,omitempty"`
}

// Event is one event as posted to webhooks and shown by `mailqctl events`
// (docs/events.md documents every field).
type Event struct {
	ID          uint64    `json:"id"` // unique, rising; receivers deduplicate on it
	Type        Type      `json:"type"`
	Time        time.Time `json:"time"`
	QueueID     string    `json:"queue_id"`
	MessageID   string    `json:"message_id,omitempty"` // the Message-ID header field
	EnvID       string    `json:"envid,omitempty"`      // RFC 3461 ENVID given at submission
	Sender      string    `json:"sender"`
	Recipient   string    `json:"recipient"`
	Source      string    `json:"source,omitempty"` // intake path, for queued
	Route       string    `json:"route,omitempty"`
	Remote      string    `json:"remote,omitempty"`
	TLS         string    `json:"tls,omitempty"`
	Attempt     int       `json:"attempt,omitempty"` // attempts made for this recipient so far
	Reply       *Reply    `json:"reply,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // for deferred
}

// Journal is the queue.Journal that turns store changes into events.
func Journal(c queue.Change) [][]byte {
	m := c.Message
	base := Event{
		Time: c.Time.UTC(), QueueID: string(m.ID), MessageID: m.MessageID,
		EnvID: m.EnvID, Sender: m.Sender,
	}
	var out []Event
	switch c.Kind {
	case queue.ChangeArrived:
		for _, rc := range m.Recipients {
			e := base
			e.Type, e.Recipient, e.Source = Queued, rc.Address, m.Source
			out = append(out, e)
		}
	case queue.ChangeOutcome:
		byAddr := make(map[string]*queue.Recipient, len(m.Recipients))
		for i := range m.Recipients {
			byAddr[m.Recipients[i].Address] = &m.Recipients[i]
		}
		for _, o := range c.Outcomes {
			e := base
			e.Recipient = o.Recipient
			if a := c.AttemptFor(o.Recipient); a != nil {
				e.Route, e.Remote, e.TLS = a.Route, a.Remote, a.TLS
			}
			if rc := byAddr[o.Recipient]; rc != nil {
				e.Attempt = rc.Attempts
			}
			if o.Reply != nil {
				e.Reply = &Reply{Code: o.Reply.Code, Enhanced: o.Reply.Enhanced, Text: o.Reply.Text}
			}
			switch o.Decision {
			case queue.DecideDelivered:
				e.Type = Delivered
			case queue.DecideRetry:
				e.Type, e.NextAttempt = Deferred, o.RetryAt.UTC()
			default:
				e.Type = Bounced
				if o.Cause == "expired" {
					e.Type = Expired
				} else {
					e.Reason = o.Cause
				}
			}
			out = append(out, e)
		}
	case queue.ChangeDelayWarned, queue.ChangeDeleted:
		typ, reason := Delayed, ""
		if c.Kind == queue.ChangeDeleted {
			typ, reason = Deleted, "operator"
		}
		for _, rc := range m.Recipients {
			if rc.State.Done() {
				continue
			}
			e := base
			e.Type, e.Recipient, e.Reason, e.Attempt = typ, rc.Address, reason, rc.Attempts
			if rc.LastReply != nil {
				e.Reply = &Reply{Code: rc.LastReply.Code, Enhanced: rc.LastReply.Enhanced, Text: rc.LastReply.Text}
			}
			out = append(out, e)
		}
	}
	payloads := make([][]byte, 0, len(out))
	for _, e := range out {
		b, err := json.Marshal(e)
		if err != nil {
			continue // cannot happen: every field is a plain value
		}
		payloads = append(payloads, b)
	}
	return payloads
}

// Decode turns a stored event into an Event with its id.
func Decode(se queue.StoredEvent) (Event, error) {
	var e Event
	if err := json.Unmarshal(se.Data, &e); err != nil {
		return e, fmt.Errorf("events: event %d is undecodable: %w", se.Seq, err)
	}
	e.ID = se.Seq
	return e, nil
}

// Encode gives the JSON body of an event as posted: the stored payload
// with its id set.
func Encode(se queue.StoredEvent) []byte {
	// The journal wrote "id":0 first (the field order of Event); put the
	// sequence number in its place without decoding the whole event.
	const zero = `{"id":0,`
	if bytes.HasPrefix(se.Data, []byte(zero)) {
		out := make([]byte, 0, len(se.Data)+20)
		out = append(out, `{"id":`...)
		out = strconv.AppendUint(out, se.Seq, 10)
		out = append(out, ',')
		return append(out, se.Data[len(zero):]...)
	}
	e, err := Decode(se)
	if err != nil {
		return se.Data
	}
	b, _ := json.Marshal(e)
	return b
}

// MessageIDOf finds the Message-ID field in the head of a message (the
// queue's Options.MessageIDOf). It reads only the header section.
func MessageIDOf(head []byte) string {
	v := esmtp.HeaderField(head, "Message-ID") // a header cut at the chunk end still yields its complete fields
	if len(v) > 998 {
		v = v[:998]
	}
	return v
}
