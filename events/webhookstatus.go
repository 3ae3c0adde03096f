package events

import "time"

// Defaults of a [[webhook]] (interfaces: config.example.toml).
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxAge  = 24 * time.Hour
	DefaultWorkers = 4
)

// WebhookStatus is one webhook's state for `mailqctl webhooks`.
type WebhookStatus struct {
	Name        string    `json:"name"`
	URL         string    `json:"url"`
	Events      []Type    `json:"events,omitempty"` // empty: every type
	Running     bool      `json:"running"`          // its cursor is loaded and it is posting
	Cursor      uint64    `json:"cursor"`           // every event up to this id is done
	Pending     uint64    `json:"pending"`          // events after the cursor
	InFlight    int       `json:"in_flight"`        // read and not yet acknowledged
	Posted      int64     `json:"posted"`           // acknowledged with 2xx
	Failures    int64     `json:"failures"`         // failed tries (each retried)
	Expired     int64     `json:"expired"`          // given up after max_age
	LastOK      time.Time `json:"last_ok,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}
