package smtpproto

// This file records an optional per-connection protocol transcript for the
// attempt history and debugging. The AUTH exchange is redacted (JavaMail
// suppresses it unless mail.debug.auth; mailq never records it) and message
// bodies are summarised by size.

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Caps that keep a transcript bounded: a few KiB per attempt (between
// two takes), the oldest lines dropped first, and each line cut short.
const (
	maxTranscriptBytes = 4 << 10
	maxTranscriptLine  = 512
)

type transcript struct {
	mu        sync.Mutex
	lines     []string
	bytes     int
	dropped   int  // lines dropped from the front since the last take
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
	if len(text) > maxTranscriptLine {
		text = text[:maxTranscriptLine] + "…"
	}
	line := t.now().UTC().Format("15:04:05.000") + " " + dir + ": " + text
	t.lines = append(t.lines, line)
	t.bytes += len(line)
	for t.bytes > maxTranscriptBytes && len(t.lines) > 1 {
		t.bytes -= len(t.lines[0])
		t.lines = t.lines[1:]
		t.dropped++
	}
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
		t.add("S", strconv.Itoa(code)+sep+l) // codes are 3 digits (readReply)
	}
}

func (t *transcript) note(text string) { t.add("*", text) }

// snapshot returns the lines since the last take, led by a note of how
// many older ones were dropped.
func (t *transcript) snapshot() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.linesLocked()
}

func (t *transcript) linesLocked() []string {
	out := make([]string, 0, len(t.lines)+1)
	if t.dropped > 0 {
		out = append(out, fmt.Sprintf("… %d earlier lines dropped (transcripts keep the last %d KiB per attempt)", t.dropped, maxTranscriptBytes>>10))
	}
	return append(out, t.lines...)
}

// take returns what snapshot does and starts afresh: the next attempt on
// the connection gets only its own lines.
func (t *transcript) take() []string {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.linesLocked()
	t.lines, t.bytes, t.dropped = nil, 0, 0
	return out
}
