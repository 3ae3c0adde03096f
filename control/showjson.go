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
	for _, a := range r.Message.Attempts {
		w.Attempts = append(w.Attempts, attempt{Attempt: a, Recipients: nonNil(a.Recipients),
			Replies: nonNil(a.Replies), Transcript: nonNil(a.Transcript)})
	}
	return json.Marshal(w)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
