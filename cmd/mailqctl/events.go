package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"mailq/control"
	"mailq/events"
)

// cmdEvents streams the event log: `events [--since T] [--follow] [--json]`.
func (a *app) cmdEvents(args []string) error {
	fs := a.newFlags("events")
	asJSON := fs.Bool("json", false, "JSON Lines, as posted to webhooks")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	since := fs.String("since", "", "from this time (RFC 3339) or this long ago (30m, 2h)")
	after := fs.Uint64("after", 0, "events with an id above this")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("events takes no arguments, got %q", rest)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = c.Events(ctx, control.EventsQuery{After: *after, Since: *since, Follow: *follow}, func(e events.Event, raw []byte) error {
		if *asJSON {
			_, err := fmt.Fprintf(a.stdout, "%s\n", raw)
			return err
		}
		_, err := fmt.Fprintln(a.stdout, formatEvent(e))
		return err
	})
	if ctx.Err() != nil {
		return nil // interrupted while following: a normal end
	}
	return err
}

// formatEvent is one human-readable line per event.
func formatEvent(e events.Event) string {
	line := fmt.Sprintf("%s %d %-9s %s <%s>", e.Time.Local().Format(time.DateTime), e.ID, e.Type, e.QueueID, e.Recipient)
	if e.Reply != nil {
		line += " " + replyText(e.Reply)
	}
	if e.Reason != "" {
		line += " (" + e.Reason + ")"
	}
	return line
}

func replyText(r *events.Reply) string {
	s := ""
	if r.Code != 0 {
		s = fmt.Sprintf("%d ", r.Code)
	}
	if r.Enhanced != "" {
		s += r.Enhanced + " "
	}
	return s + r.Text
}

// cmdWebhooks shows each webhook's state: `webhooks [--json]`.
func (a *app) cmdWebhooks(args []string) error {
	fs := a.newFlags("webhooks")
	asJSON := fs.Bool("json", false, "JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("webhooks takes no arguments")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.Webhooks(context.Background())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(st)
	}
	if len(st) == 0 {
		fmt.Fprintln(a.stdout, "no webhooks configured")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPENDING\tIN FLIGHT\tPOSTED\tFAILURES\tEXPIRED\tLAST ERROR")
	for _, w := range st {
		last := "-"
		if w.LastError != "" {
			last = w.LastErrorAt.Local().Format(time.DateTime) + " " + w.LastError
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", w.Name, w.Pending, w.InFlight, w.Posted, w.Failures, w.Expired, last)
	}
	return tw.Flush()
}

// cmdSuppression manages the list: `suppression list|add|remove|check [ADDR] [--json] [--reason TEXT]`.
func (a *app) cmdSuppression(args []string) error {
	fs := a.newFlags("suppression")
	asJSON := fs.Bool("json", false, "JSON")
	reason := fs.String("reason", "", "why (add)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usagef("suppression needs a subcommand: list, add ADDR, remove ADDR or check ADDR")
	}
	sub, rest := rest[0], rest[1:]
	want := 1
	if sub == "list" {
		want = 0
	}
	if len(rest) != want {
		return usagef("suppression %s takes %d address(es), got %d", sub, want, len(rest))
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	print := func(e control.SuppressionEntry) error {
		if *asJSON {
			return json.NewEncoder(a.stdout).Encode(e)
		}
		_, err := fmt.Fprintf(a.stdout, "%s\tsince %s\tuntil %s\t%s\n", e.Address,
			e.Time.Local().Format(time.DateTime), e.Expires.Local().Format(time.DateTime),
			replyText(&events.Reply{Code: e.Reply.Code, Enhanced: e.Reply.Enhanced, Text: e.Reply.Text}))
		return err
	}
	switch sub {
	case "list":
		return c.SuppressionList(ctx, print)
	case "add":
		e, err := c.SuppressionAdd(ctx, rest[0], *reason)
		if err != nil {
			return err
		}
		return print(e)
	case "remove":
		if err := c.SuppressionRemove(ctx, rest[0]); err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintf(a.stdout, "%s removed\n", rest[0])
		}
		return nil
	case "check":
		e, err := c.SuppressionCheck(ctx, rest[0])
		var ae *control.APIError
		if errors.As(err, &ae) && ae.Status == 404 {
			if *asJSON {
				fmt.Fprintln(a.stdout, "null")
			} else {
				fmt.Fprintf(a.stdout, "%s is not suppressed\n", rest[0])
			}
			return errReported // exit 1, as grep does for "not found"
		}
		if err != nil {
			return err
		}
		return print(e)
	}
	return usagef("unknown suppression subcommand %q: use list, add, remove or check", sub)
}

// The help of the commands in this file (help.go's table).
func init() {
	commandDocs = append(commandDocs,
		commandDoc{name: "events", summary: "the delivery events: arrivals and per-recipient outcomes (--follow: keep watching)",
			text: "Prints the stored delivery events (queued, delivered, deferred, bounced, expired, delayed, deleted),\n" +
				"one line each, or with --json exactly as they are posted to webhooks (docs/events.md).",
			example: "mailqctl events --since 30m\nmailqctl events --follow --json | jq 'select(.type == \"bounced\")'"},
		commandDoc{name: "webhooks", summary: "each webhook: events pending, posts, failures, last error",
			text:    "Shows each [[webhook]]: its cursor, the events pending and in flight, posts, failed tries, events\ngiven up after max_age, and the last error.",
			example: "mailqctl webhooks"},
		commandDoc{name: "suppression", args: "list|add ADDR|remove ADDR|check ADDR",
			summary: "the suppression list of addresses a server called nonexistent",
			text: "Lists, adds, removes or checks addresses on the suppression list: mail to them is bounced\n" +
				"without contacting a server (or refused at RCPT with refuse_at_rcpt). check exits 1 when the\naddress is not on the list.",
			example: "mailqctl suppression check user@example.com\nmailqctl suppression remove user@example.com"},
	)
}
