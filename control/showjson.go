package control

import (
	"encoding/json"

	"mailq/queue"
)

// MarshalJSON writes show's object with every field of docs/cli.md always
// present: "attempts" is [] before the first attempt, and each attempt's
// "recipients", "replies" and "transcript" are lists even when empty, so a
// script's `.attempts[].transcript[]` never meets a missing key or null.
func (r ShowReply) MarshalJSON() ([]byte, error) {
	type attempt struct {
		queue.Attempt
		Recipients []string          `json:"recipients"`
		Replies    []queue.StepReply `json:"replies"`
		Transcript []string          `json:"transcript"`
		// InProgress marks the attempt running now (the message is
		// active): it is not interrupted, it has no outcome yet.
		InProgress bool `json:"in_progress,omitempty"`
	}
	type wire struct {
		*queue.Message
		Recipients []queue.Recipient `json:"recipients"`
		Attempts   []attempt         `json:"attempts"`
		Headers    map[string]string `json:"headers,omitempty"`
	}
	if r.Message == nil {
		return []byte("null"), nil
	}
	w := wire{Message: r.Message, Recipients: nonNil(r.Message.Recipients),
		Attempts: make([]attempt, 0, len(r.Message.Attempts)), Headers: r.Headers}
	for i, a := range r.Message.Attempts {
		// An active message is leased, and Lease appended its attempt last.
		running := r.Message.Status == queue.StatusActive && i == len(r.Message.Attempts)-1
		if running {
			a.Interrupted = false
		}
		w.Attempts = append(w.Attempts, attempt{Attempt: a, Recipients: nonNil(a.Recipients),
			Replies: nonNil(a.Replies), Transcript: nonNil(a.Transcript), InProgress: running})
	}
	return json.Marshal(w)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
