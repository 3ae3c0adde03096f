package smtpproto

// This file records an optional per-connection protocol transcript for the
// attempt history and debugging. The AUTH exchange is redacted (JavaMail
// suppresses it unless mail.debug.auth; mailq never records it) and message
// bodies are summarised by size.

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Caps that keep a long session's transcript bounded.
const (
	maxTranscriptLines = 2000
	maxTranscriptBytes = 256 << 10
	maxTranscriptLine  = 512
)

type transcript struct {
	mu        sync.Mutex
	lines     []string
	bytes     int
	truncated bool
	redacting bool // inside an AUTH exchange
	now       func() time.Time
}

func newTranscript() *transcript { return &transcript{now: time.Now} }

func (t *transcript) add(dir, text string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.truncated {
		return
	}
	if len(text) > maxTranscriptLine {
		text = text[:maxTranscriptLine] + "…"
	}
	line := fmt.Sprintf("%s %s: %s", t.now().UTC().Format("15:04:05.000"), dir, text)
	if len(t.lines) >= maxTranscriptLines || t.bytes+len(line) > maxTranscriptBytes {
		t.truncated = true
		t.lines = append(t.lines, "… transcript truncated")
		return
	}
	t.lines = append(t.lines, line)
	t.bytes += len(line)
}

// client records a command. AUTH lines keep only the mechanism name; every
// client line of the exchange that follows is replaced.
func (t *transcript) client(cmd string) {
	if t == nil {
		return
	}
	if t.redacting {
		t.add("C", "<redacted>")
		return
	}
	if f := strings.Fields(cmd); len(f) > 0 && strings.EqualFold(f[0], "AUTH") {
		mech := ""
		if len(f) > 1 {
			mech = f[1] + " "
		}
		t.add("C", "AUTH "+mech+"<redacted>")
		t.redacting = true
		return
	}
	t.add("C", cmd)
}

// server records a reply; inside an AUTH exchange 334 challenges are
// redacted and the first non-334 reply ends the exchange.
func (t *transcript) server(code int, lines []string) {
	if t == nil {
		return
	}
	if t.redacting {
		if code == 334 {
			t.add("S", "334 <redacted>")
			return
		}
		t.redacting = false
	}
	for i, l := range lines {
		sep := " "
		if i < len(lines)-1 {
			sep = "-"
		}
		t.add("S", fmt.Sprintf("%03d%s%s", code, sep, l))
	}
}

func (t *transcript) note(text string) { t.add("*", text) }

func (t *transcript) snapshot() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}
