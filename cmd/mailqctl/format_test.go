package main

import (
	"testing"

	"mailq/queue"
)

func TestFormatReply(t *testing.T) {
	tests := []struct {
		name string
		r    *queue.Reply
		want string
	}{
		{"none yet", nil, "-"},
		{"server reply", &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "try later"}, "450 4.2.1 try later"},
		{"no enhanced code", &queue.Reply{Code: 250, Text: "ok"}, "250 ok"},
		{"mailq's own failure has no code", &queue.Reply{Enhanced: "4.4.1", Text: "connection refused"}, "4.4.1 connection refused"},
		{"multi-line text folded", &queue.Reply{Code: 550, Text: "no\nsuch user"}, "550 no such user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatReply(tt.r); got != tt.want {
				t.Errorf("formatReply = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSanitizeForTerminal(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text\twith tab\n", "plain text\twith tab\n"},
		{"Grüße, 日本", "Grüße, 日本"},
		{"evil\x1b[2J\x1b]0;owned\x07subject", `evil\x1b[2J\x1b]0;owned\x07subject`},
		{"cr\rover", `cr\x0dover`},
		{"c1\u009bcsi", `c1\x9bcsi`},
		{"bad \xff utf8", `bad \xff utf8`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
	}
	for _, tt := range tests {
		if got := sanitizeForTerminal(tt.in); got != tt.want {
			t.Errorf("sanitizeForTerminal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
