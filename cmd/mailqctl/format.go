package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"mailq/control"
	"mailq/queue"
)

// maxReplyColumn is how much of the last server reply a list row shows;
// show prints replies whole.
const maxReplyColumn = 60

// listBlock is how many messages list aligns together: the table is
// printed a block at a time, so a queue of a million messages streams
// through bounded memory (columns may shift slightly between blocks).
const listBlock = 512

// listTable prints list's aligned columns: one row per message, then, as
// Postfix's postqueue -p does, one row per recipient still to do with its
// state, next attempt and last reply.
type listTable struct {
	tw   *tabwriter.Writer
	rows io.Writer // tw behind terminalSafe
	now  time.Time
	n    int
}

// newListTable prints to w, which gets text made safe for a terminal:
// each row is sanitized as it goes into the tabwriter (one check per row,
// not one per cell and padding run as behind it), so columns are aligned
// on what the terminal shows.
func newListTable(w io.Writer, now time.Time) *listTable {
	t := &listTable{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), now: now}
	fmt.Fprintln(t.tw, "ID\tSIZE\tARRIVAL\tSENDER\tSTATUS\tNEXT\tLEFT\tLAST REPLY")
	t.rows = terminalSafe(t.tw)
	return t
}

// listRow is the part of a line of the daemon's list a table row shows:
// decoding only it costs about two thirds of decoding a queue.Message
// (the table's cost at 1M messages is the client's decoding; issue 13).
type listRow struct {
	ID          queue.ID     `json:"id"`
	Status      queue.Status `json:"status"`
	Sender      string       `json:"sender"`
	Size        int64        `json:"size"`
	Arrival     time.Time    `json:"arrival"`
	NextAttempt time.Time    `json:"next_attempt"`
	Held        bool         `json:"held"`
	Recipients  []struct {
		Address     string               `json:"address"`
		State       queue.RecipientState `json:"state"`
		NextAttempt time.Time            `json:"next_attempt"`
		LastReply   *queue.Reply         `json:"last_reply"`
	} `json:"recipients"`
}

// addLine adds the row of one list line.
func (t *listTable) addLine(line []byte) error {
	var r listRow
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("reading the message list: %w", err)
	}
	m := queue.Message{ID: r.ID, Status: r.Status, Sender: r.Sender, Size: r.Size, Arrival: r.Arrival,
		NextAttempt: r.NextAttempt, Held: r.Held, Recipients: make([]queue.Recipient, len(r.Recipients))}
	for i, rc := range r.Recipients {
		m.Recipients[i] = queue.Recipient{Address: rc.Address, State: rc.State, NextAttempt: rc.NextAttempt, LastReply: rc.LastReply}
	}
	t.add(&m)
	return nil
}

func (t *listTable) add(m *queue.Message) {
	t.n++
	left := 0
	for _, r := range m.Recipients {
		if !r.State.Done() {
			left++
		}
	}
	next := relTime(m.NextAttempt, t.now)
	if m.Held {
		next = "held"
	}
	fmt.Fprintf(t.rows, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", m.ID, humanSize(m.Size), relTime(m.Arrival, t.now),
		sender(m.Sender), m.Status, next, left, len(m.Recipients),
		truncate(formatReply(lastReply(m)), maxReplyColumn))
	for _, r := range m.Recipients {
		if r.State.Done() {
			continue
		}
		rnext := relTime(r.NextAttempt, t.now)
		if m.Held {
			rnext = "held"
		}
		fmt.Fprintf(t.rows, "\t\t\t  %s\t%s\t%s\t\t%s\n", r.Address, r.State, rnext,
			truncate(formatReply(r.LastReply), maxReplyColumn))
	}
	if t.n%listBlock == 0 {
		t.tw.Flush()
	}
}

func (t *listTable) flush() {
	t.tw.Flush()
}

// lastReply picks the reply most telling for a list row: the first one of a
// recipient still to do, else any recipient's.
func lastReply(m *queue.Message) *queue.Reply {
	var any *queue.Reply
	for _, r := range m.Recipients {
		if r.LastReply == nil {
			continue
		}
		if !r.State.Done() {
			return r.LastReply
		}
		if any == nil {
			any = r.LastReply
		}
	}
	return any
}

func formatReply(r *queue.Reply) string {
	if r == nil {
		return "-"
	}
	// Code 0 marks a failure mailq saw itself (no server reply, e.g. a
	// refused connection): show only the status and the text.
	var parts []string
	if r.Code != 0 {
		parts = append(parts, fmt.Sprintf("%d", r.Code))
	}
	if r.Enhanced != "" {
		parts = append(parts, r.Enhanced)
	}
	if r.Text != "" {
		parts = append(parts, oneLine(r.Text))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// printMessage is show's human form; withTranscript adds each attempt's
// transcript (show --transcript).
func printMessage(w io.Writer, m *control.ShowReply, now time.Time, withTranscript ...bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", string(m.ID))
	row("status", string(m.Status))
	row("sender", sender(m.Sender))
	row("size", fmt.Sprintf("%s (%d bytes)", humanSize(m.Size), m.Size))
	row("arrival", absTime(m.Arrival, now))
	switch {
	case m.Held:
		row("next attempt", "none while held")
		row("held", "yes (never attempted until released)")
	case m.Status == queue.StatusActive:
		row("next attempt", "in progress now")
	default:
		row("next attempt", absTime(m.NextAttempt, now))
	}
	if m.Source != "" {
		row("source", m.Source)
	}
	if m.EnvID != "" {
		row("envid", m.EnvID)
	}
	if m.Ret != "" {
		row("ret", m.Ret)
	}
	if m.SMTPUTF8 {
		row("smtputf8", "yes")
	}
	if !m.Finished.IsZero() {
		row("finished", absTime(m.Finished, now))
	}
	tw.Flush()

	if len(m.Headers) > 0 {
		fmt.Fprintln(w, "\nheaders:")
		keys := make([]string, 0, len(m.Headers))
		for k := range m.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s:\t%s\n", k, m.Headers[k])
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nrecipients (%d):\n", len(m.Recipients))
	fmt.Fprintln(tw, "  ADDRESS\tSTATE\tATTEMPTS\tNEXT\tNOTIFY\tLAST REPLY")
	for _, r := range m.Recipients {
		notify := r.Notify
		if notify == "" {
			notify = "-"
		}
		next := relTime(r.NextAttempt, now)
		if m.Held && !r.State.Done() {
			next = "held"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", r.Address, r.State, r.Attempts,
			next, notify, formatReply(r.LastReply))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nattempts (%d):\n", len(m.Attempts))
	for i, at := range m.Attempts {
		tls := at.TLS
		if tls == "" {
			tls = "no TLS"
		}
		remote := at.Remote
		if remote == "" {
			remote = "(no connection)"
		}
		fmt.Fprintf(w, "  #%d  %s  route %s  remote %s  %s  %s  for %s\n", i+1, absTime(at.Time, now),
			at.Route, remote, tls, time.Duration(at.DurationMS)*time.Millisecond, strings.Join(at.Recipients, ", "))
		if at.Operator {
			fmt.Fprintln(w, "      asked for by an operator (retry or flush): does not advance the retry schedule")
		}
		switch {
		case m.Status == queue.StatusActive && i == len(m.Attempts)-1:
			// The daemon holds a lease on it: the attempt is running (the
			// daemon sends it with in_progress, not interrupted).
			fmt.Fprintf(w, "      in progress since %s\n", absTime(at.Time, now))
		case at.Interrupted:
			fmt.Fprintln(w, "      interrupted: the daemon stopped before this attempt recorded an outcome")
		}
		for _, r := range at.Replies {
			fmt.Fprintf(w, "      %s -> %s\n", oneLine(r.Command), formatReply(&r.Reply))
		}
		printAttemptDetail(w, at, len(withTranscript) > 0 && withTranscript[0])
	}
}

// printAttemptDetail adds what the attempt line leaves out: the proxy, the
// TLS cipher, why a connection failed, and with --transcript the session
// transcript (AUTH redacted, no body).
func printAttemptDetail(w io.Writer, at queue.Attempt, withTranscript bool) {
	if at.Proxy != "" {
		fmt.Fprintf(w, "      via %s\n", at.Proxy)
	}
	if at.Cipher != "" {
		fmt.Fprintf(w, "      cipher %s\n", at.Cipher)
	}
	if at.Error != "" {
		fmt.Fprintf(w, "      error: %s\n", oneLine(at.Error))
	}
	if !withTranscript {
		return
	}
	if len(at.Transcript) == 0 {
		fmt.Fprintln(w, "      (no transcript)")
		return
	}
	fmt.Fprintln(w, "      transcript:")
	for _, l := range at.Transcript {
		fmt.Fprintf(w, "        %s\n", l)
	}
}

// printStats is stats' human form.
func printStats(w io.Writer, st control.Stats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	rows := []struct {
		k string
		v any
	}{
		{"queued", st.Queued}, {"active", st.Active}, {"deferred", st.Deferred}, {"held", st.Held},
		{"live", st.Live}, {"done", st.Done}, {"damaged", st.Damaged},
		{"oldest", time.Duration(st.OldestAgeSeconds) * time.Second},
		{"delivered since start", st.DeliveredTotal}, {"bounced since start", st.BouncedTotal},
		{"deferred since start", st.DeferredTotal}, {"maildrop failed", st.MaildropFailed},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%v\t\n", r.k, r.v)
	}
	tw.Flush()
}

func sender(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

// relTime is t relative to now: "3m ago", "in 5m", "now"; "-" for no time.
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return shortDuration(d) + " ago"
	default:
		return "in " + shortDuration(-d)
	}
}

// absTime is a local timestamp followed by relTime, for show.
func absTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + " (" + relTime(t, now) + ")"
}

// shortDuration rounds to the two largest units: 45s, 3m, 2h5m, 3d4h.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

func humanSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%dB", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1fK", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1fM", float64(n)/(1024*1024))
	}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
