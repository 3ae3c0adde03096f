package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"mailq/control"
	"mailq/queue"
)

var commands map[string]func(*app, []string) error

func init() {
	commands = map[string]func(*app, []string) error{
		"list":        (*app).cmdList,
		"show":        (*app).cmdShow,
		"flush":       (*app).cmdFlush,
		"retry":       func(a *app, args []string) error { return a.cmdAction("retry", args) },
		"hold":        func(a *app, args []string) error { return a.cmdAction("hold", args) },
		"release":     func(a *app, args []string) error { return a.cmdAction("release", args) },
		"delete":      func(a *app, args []string) error { return a.cmdAction("delete", args) },
		"bounce":      func(a *app, args []string) error { return a.cmdAction("bounce", args) },
		"stats":       (*app).cmdStats,
		"enqueue":     (*app).cmdEnqueue,
		"events":      (*app).cmdEvents,      // events.go
		"webhooks":    (*app).cmdWebhooks,    // events.go
		"suppression": (*app).cmdSuppression, // events.go
		"backup":      (*app).cmdBackup,      // backup.go
	}
}

// newFlags returns a FlagSet for one command that also accepts the global
// options after the command name.
func (a *app) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.socket, "socket", a.socket, "control socket")
	fs.StringVar(&a.configPath, "config", a.configPath, "configuration file")
	fs.StringVar(&a.maildrop, "maildrop", a.maildrop, "maildrop directory")
	return fs
}

// parseFlags parses flags that may appear before, between or after the
// positional arguments ("show ID --json"), which it returns.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpRequested{fs}
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func (a *app) cmdList(args []string) error {
	fs := a.newFlags("list")
	asJSON := fs.Bool("json", false, "JSON Lines")
	status := fs.String("status", "", "queued, deferred, held, active or done")
	from := fs.String("from", "", "sender address")
	to := fs.String("to", "", "recipient address or @domain")
	var older ageFlag
	fs.Var(&older, "older", "arrived longer ago than this (30m, 2h, 3d)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("list takes no arguments, got %q", rest)
	}
	switch queue.Status(*status) {
	case "", queue.StatusQueued, queue.StatusDeferred, queue.StatusHeld, queue.StatusActive, queue.StatusDone:
	default:
		return usagef("list: unknown --status %q (queued, deferred, held, active or done)", *status)
	}
	if older < 0 {
		return usagef("list: --older must not be negative")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	f := queue.Filter{Status: queue.Status(*status), Sender: *from, Recipient: *to, OlderThan: time.Duration(older)}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		return c.List(context.Background(), f, func(m *queue.Message) error { return enc.Encode(m) })
	}
	t := newListTable(a.stdout, time.Now())
	err = c.List(context.Background(), f, func(m *queue.Message) error { t.add(m); return nil })
	if err == nil || t.n > 0 {
		t.flush() // nothing at all when the daemon could not be asked
	}
	return err
}

func (a *app) cmdShow(args []string) error {
	fs := a.newFlags("show")
	asJSON := fs.Bool("json", false, "JSON")
	withTranscript := fs.Bool("transcript", false, "print each attempt's SMTP transcript")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("show takes exactly one message id")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	m, err := c.Show(context.Background(), queue.ID(rest[0]))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(m)
	}
	printMessage(a.stdout, m, time.Now(), *withTranscript)
	return nil
}

func (a *app) cmdFlush(args []string) error {
	fs := a.newFlags("flush")
	asJSON := fs.Bool("json", false, "JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("flush takes no arguments")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	n, err := c.Flush(context.Background())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(control.ActionReply{Count: n})
	}
	fmt.Fprintf(a.stdout, "%d deferred %s due now\n", n, plural(n, "message", "messages"))
	return nil
}

// actionDone is the past tense each action prints for a message it changed.
var actionDone = map[string]string{"retry": "due now", "hold": "held", "release": "released",
	"delete": "deleted", "bounce": "bounced"}

func (a *app) cmdAction(name string, args []string) error {
	fs := a.newFlags(name)
	asJSON := fs.Bool("json", false, "JSON")
	var all *bool
	if name == "retry" {
		all = fs.Bool("all", false, "every message in the queue")
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	everything := all != nil && *all
	if everything && len(rest) > 0 {
		return usagef("retry: give message ids or --all, not both")
	}
	var ids []queue.ID
	if !everything {
		if ids, err = a.readIDs(rest); err != nil {
			return err
		}
		if len(ids) == 0 {
			return usagef("%s needs at least one message id (or - to read them from standard input)", name)
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	reply, err := c.Action(context.Background(), name, ids, everything)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range reply.Results {
		if r.Error != "" {
			failed++
			fmt.Fprintf(a.stderr, "mailqctl: %s %s: %s\n", name, r.ID, r.Error)
		}
	}
	if *asJSON {
		if err := json.NewEncoder(a.stdout).Encode(reply); err != nil {
			return err
		}
	} else {
		for _, r := range reply.Results {
			if r.Error == "" {
				fmt.Fprintf(a.stdout, "%s: %s\n", r.ID, actionDone[name])
			}
		}
		if everything {
			fmt.Fprintf(a.stdout, "%d %s due now\n", reply.Count, plural(reply.Count, "message", "messages"))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d messages", errReported, failed, len(reply.Results))
	}
	return nil
}

// readIDs expands "-" into the ids on standard input, one per line.
func (a *app) readIDs(args []string) ([]queue.ID, error) {
	var ids []queue.ID
	for _, arg := range args {
		if arg != "-" {
			ids = append(ids, queue.ID(arg))
			continue
		}
		sc := bufio.NewScanner(a.stdin)
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				ids = append(ids, queue.ID(id))
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading ids from standard input: %w", err)
		}
	}
	return ids, nil
}

func (a *app) cmdStats(args []string) error {
	fs := a.newFlags("stats")
	asJSON := fs.Bool("json", false, "JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("stats takes no arguments")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.Stats(context.Background())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(st)
	}
	printStats(a.stdout, st)
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (a *app) cmdEnqueue(args []string) error {
	fs := a.newFlags("enqueue")
	asJSON := fs.Bool("json", false, "print {\"id\": …}")
	from := fs.String("from", "", "sender; \"\" is the null sender")
	var to stringList
	fs.Var(&to, "to", "recipient (repeat for each)")
	notify := fs.String("notify", "", "RFC 3461 NOTIFY for every recipient: NEVER or SUCCESS,FAILURE,DELAY")
	ret := fs.String("ret", "", "RFC 3461 RET: FULL or HDRS")
	envid := fs.String("envid", "", "RFC 3461 ENVID")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("enqueue takes the message on standard input, not as arguments (got %q)", rest)
	}
	fromSet := false
	fs.Visit(func(f *flag.Flag) { fromSet = fromSet || f.Name == "from" })
	if !fromSet {
		return usagef("enqueue needs --from (--from \"\" for the null sender)")
	}
	if len(to) == 0 {
		return usagef("enqueue needs at least one --to")
	}
	env := queue.Envelope{Sender: *from, EnvID: *envid, Ret: strings.ToUpper(*ret)}
	for _, r := range to {
		env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: r, Notify: strings.ToUpper(*notify)})
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	id, err := c.Enqueue(context.Background(), env, a.stdin, "control")
	if err != nil {
		var apiErr *control.APIError
		if errors.As(err, &apiErr) {
			return fmt.Errorf("message refused: %w", err)
		}
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(control.EnqueueReply{ID: id})
	}
	fmt.Fprintln(a.stdout, id)
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ageFlag is --older: a Go duration ("90m", "2h"), or whole days ("3d"),
// since queue ages are usually thought of in days.
type ageFlag time.Duration

func (f *ageFlag) String() string { return time.Duration(*f).String() }

func (f *ageFlag) Set(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return fmt.Errorf("want a duration such as 30m, 2h or 3d, got %q", v)
		}
		*f = ageFlag(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 30m, 2h or 3d, got %q", v)
	}
	*f = ageFlag(d)
	return nil
}
