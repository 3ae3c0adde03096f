// Package control is mailq's control API, HTTP+JSON over a unix socket: the
// wire types and the client that mailqctl and sendmail use (control/server
// answers it in the daemon).
package control

import (
	"time"

	"mailq/queue"
)

// The wire protocol, shared by Server and Client. Every path is under /v1/;
// errors are an HTTP status with an ErrorReply body.
//
//	GET  /v1/ping                       liveness, for sendmail's choice between socket and maildrop
//	GET  /v1/messages?status=&from=&to=&older=&message_id=   JSON Lines of queue.Message
//	GET  /v1/messages/{id}              one queue.Message with its attempts
//	GET  /v1/messages/{id}/body         the stored message, as it will be sent (message/rfc822)
//	GET  /v1/stats                      Stats
//	GET  /v1/summary?by=domain|sender|route   Summary
//	POST /v1/flush                      ActionReply (Count only)
//	POST /v1/{retry,hold,release,delete,bounce}  ActionRequest -> ActionReply
//	POST /v1/enqueue?source=control|sendmail     one line of JSON queue.Envelope, "\n", then the raw message -> EnqueueReply
//	GET  /v1/backup                     a consistent snapshot of queue.db (octet stream; error in the Mailq-Error trailer)
const APIPrefix = "/v1/"

// ErrorTrailer carries an error that happened after a streamed answer
// began (list, body, events, suppression, backup): a client must not take
// a stream that ended with one as complete.
const ErrorTrailer = "Mailq-Error"

// Stats is the stats command's reply; the field names are the contract of
// docs/cli.md (`stats --json`).
type Stats struct {
	Queued           int   `json:"queued"`
	Active           int   `json:"active"`
	Deferred         int   `json:"deferred"`
	Held             int   `json:"held"`
	Live             int   `json:"live"`
	Done             int   `json:"done"`
	Damaged          int   `json:"damaged"`
	OldestAgeSeconds int64 `json:"oldest_age_seconds"`
	DeliveredTotal   int64 `json:"delivered_total"`
	BouncedTotal     int64 `json:"bounced_total"`
	DeferredTotal    int64 `json:"deferred_total"`
	MaildropFailed   int   `json:"maildrop_failed"`
}

// ActionRequest names the messages a retry/hold/release/delete/bounce acts
// on: IDs, or every message Select matches; All (retry only) is every live
// message. Recipients (delete and bounce only) narrows the action to the
// recipients still to do that match it (an address or a domain), leaving
// the rest of each message as it was.
type ActionRequest struct {
	// Recipients and Select come first on the wire: the daemon applies
	// the ids as they stream in, and must know how before the first.
	Recipients string     `json:"recipients,omitempty"`
	Select     *Selection `json:"select,omitempty"`
	IDs        []queue.ID `json:"ids"`
	All        bool       `json:"all,omitempty"`
}

// Selection picks messages as list's filters do (the query parameters of
// GET /v1/messages have the same names).
type Selection struct {
	Status    string `json:"status,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Older     string `json:"older,omitempty"`      // a Go duration: 30m, 72h
	MessageID string `json:"message_id,omitempty"` // the Message-ID field, with or without <>
}

// ActionResult is what happened to one message: Error when the action
// failed, Unchanged when there was nothing to do (retry of a held message,
// release of one not held), both empty when the message was changed.
type ActionResult struct {
	ID        queue.ID `json:"id"`
	Error     string   `json:"error,omitempty"`
	Unchanged string   `json:"unchanged,omitempty"`
}

// ActionReply answers an action: one result per id asked for, and Count,
// the number of messages that were changed.
type ActionReply struct {
	Results []ActionResult `json:"results,omitempty"`
	Count   int            `json:"count"`
}

// EnqueueReply is sent only once the message is durable.
type EnqueueReply struct {
	ID queue.ID `json:"id"`
}

// ErrorReply is the body of every non-2xx answer.
type ErrorReply struct {
	Error string `json:"error"`
}

// MaxEnvelopeLine bounds the JSON envelope line of an enqueue request
// (a thousand recipients with NOTIFY and ORCPT fit comfortably).
const MaxEnvelopeLine = 4 << 20

// ShowReply is show's answer: the message with its attempts, plus a summary
// of its header (From, To, Cc, Subject, Date, Message-ID) when the body
// could be read.
type ShowReply struct {
	*queue.Message
	Headers map[string]string `json:"headers,omitempty"`
}

// SuppressionEntry is one suppression list entry with its expiry.
type SuppressionEntry struct {
	queue.Suppression
	Expires time.Time `json:"expires"`
}

// SuppressionAdd is the body of POST /v1/suppression.
type SuppressionAdd struct {
	Address string `json:"address"`
	Reason  string `json:"reason,omitempty"`
}
