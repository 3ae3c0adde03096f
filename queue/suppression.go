package queue

// The suppression list holds addresses that failed permanently in a way
// that means they do not exist. RecordOutcome adds an address in the same
// transaction as the bounce that proved it (Outcome.Suppress); delivery
// consults the list before contacting a server. Addresses are compared
// case-insensitively.

import "time"

// Suppression is one entry of the suppression list.
type Suppression struct {
	Address string    `json:"address"`
	Reply   Reply     `json:"reply"`              // the reply that proved the address gone
	Time    time.Time `json:"time"`               // when it was added
	QueueID ID        `json:"queue_id,omitempty"` // the message whose bounce added it ("" when added by hand)
	Route   string    `json:"route,omitempty"`
}
