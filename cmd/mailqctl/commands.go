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
		"cat":         (*app).cmdCat,
		"summary":     (*app).cmdSummary,
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

// selectionFlags are list's filters; delete, hold, release, retry, bounce
// and flush take them too, to act on what they select.
type selectionFlags struct {
	status, from, to, messageID *string
	older                       ageFlag
}

func addSelectionFlags(fs *flag.FlagSet) *selectionFlags {
	sf := &selectionFlags{
		status:    fs.String("status", "", "queued, deferred, held, active or done"),
		from:      fs.String("from", "", "sender address, @domain or domain; <> for the null sender"),
		to:        fs.String("to", "", "recipient address, @domain or domain (recipients still to do)"),
		messageID: fs.String("message-id", "", "the Message-ID header field, with or without <>"),
	}
	fs.Var(&sf.older, "older", "arrived longer ago than this (30m, 2h, 3d)")
	return sf
}

// selection checks the flags and returns the selection, and whether any
// filter was given.
func (sf *selectionFlags) selection(cmd string) (control.Selection, bool, error) {
	switch queue.Status(*sf.status) {
	case "", queue.StatusQueued, queue.StatusDeferred, queue.StatusHeld, queue.StatusActive, queue.StatusDone:
	default:
		return control.Selection{}, false, usagef("%s: unknown --status %q (queued, deferred, held, active or done)", cmd, *sf.status)
	}
	if sf.older < 0 {
		return control.Selection{}, false, usagef("%s: --older must not be negative", cmd)
	}
	for flagName, v := range map[string]string{"from": *sf.from, "to": *sf.to} {
		if err := checkAddressPattern(v); err != nil {
			return control.Selection{}, false, usagef("%s: --%s %q: %v", cmd, flagName, v, err)
		}
	}
	sel := control.Selection{Status: *sf.status, From: *sf.from, To: *sf.to, MessageID: *sf.messageID}
	if sf.older > 0 {
		sel.Older = time.Duration(sf.older).String()
	}
	return sel, sel != control.Selection{}, nil
}

// checkAddressPattern accepts what queue.MatchAddress does: an address,
// "@domain" or "domain" ("<>" and "" too); anything else gets a hint
// instead of silently matching nothing.
func checkAddressPattern(v string) error {
	if v == "" || v == "<>" {
		return nil
	}
	local, domain, hasAt := strings.Cut(strings.TrimPrefix(v, "@"), "@")
	switch {
	case strings.ContainsAny(v, " <>,"):
		return errors.New("give one address, @domain or domain (no spaces, brackets or lists)")
	case strings.HasPrefix(v, "@") && hasAt:
		return errors.New("a domain is written @example.com or example.com")
	case hasAt && (local == "" || domain == ""):
		return errors.New("want user@example.com, @example.com or example.com")
	case !hasAt && strings.TrimPrefix(v, "@") == "":
		return errors.New("want user@example.com, @example.com or example.com")
	}
	return nil
}

func (a *app) cmdList(args []string) error {
	fs := a.newFlags("list")
	asJSON := fs.Bool("json", false, "JSON Lines")
	idsOnly := fs.Bool("ids", false, "message ids only, one per line")
	sf := addSelectionFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("list takes no arguments, got %q", rest)
	}
	sel, _, err := sf.selection("list")
	if err != nil {
		return err
	}
	c, done, err := a.readClient(context.Background())
	if err != nil {
		return err
	}
	defer done()
	out := bufio.NewWriterSize(a.stdout, 64<<10)
	defer out.Flush()
	switch {
	case *idsOnly:
		return c.ListLines(context.Background(), sel, func(line []byte) error {
			var m struct {
				ID queue.ID `json:"id"`
			}
			if err := json.Unmarshal(line, &m); err != nil {
				return fmt.Errorf("reading the message list: %w", err)
			}
			_, err := fmt.Fprintln(out, m.ID)
			return err
		})
	case *asJSON:
		// The daemon's lines are the contract's objects already: pass them
		// through as they stream, without decoding them.
		return c.ListLines(context.Background(), sel, func(line []byte) error {
			out.Write(line)
			return out.WriteByte('\n')
		})
	}
	t := newListTable(out, time.Now())
	err = c.ListLines(context.Background(), sel, t.addLine)
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
	c, done, err := a.readClient(context.Background())
	if err != nil {
		return err
	}
	defer done()
	m, err := c.Show(context.Background(), queue.ID(rest[0]))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(m)
	}
	printMessage(terminalSafe(a.stdout), m, time.Now(), *withTranscript)
	return nil
}

func (a *app) cmdFlush(args []string) error {
	fs := a.newFlags("flush")
	asJSON := fs.Bool("json", false, "JSON")
	to := fs.String("to", "", "only deferred mail for this recipient, @domain or domain (Postfix postqueue -s)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("flush takes no arguments")
	}
	if err := checkAddressPattern(*to); err != nil {
		return usagef("flush: --to %q: %v", *to, err)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if *to != "" {
		reply, err := c.ActionRequest(context.Background(), "retry",
			control.ActionRequest{Select: &control.Selection{Status: string(queue.StatusDeferred), To: *to}})
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(a.stdout).Encode(control.ActionReply{Count: reply.Count})
		}
		fmt.Fprintf(a.stdout, "%d deferred %s for %s due now\n", reply.Count, plural(reply.Count, "message", "messages"), *to)
		return nil
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
	sf := addSelectionFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	sel, selecting, err := sf.selection(name)
	if err != nil {
		return err
	}
	everything := all != nil && *all
	if everything && (len(rest) > 0 || selecting) {
		return usagef("retry: give message ids, filters or --all, not several")
	}
	req := control.ActionRequest{All: everything}
	// delete and bounce with --to act on the matching recipients only,
	// of the ids given or of every message with such a recipient.
	if (name == "delete" || name == "bounce") && sel.To != "" {
		req.Recipients = sel.To
	}
	if !everything {
		if req.IDs, err = a.readIDs(rest); err != nil {
			return err
		}
		switch {
		case len(req.IDs) > 0 && selecting && (req.Recipients == "" || sel != control.Selection{To: sel.To}):
			return usagef("%s: give message ids or filters, not both (only --to narrows %s to recipients of the ids given)", name, name)
		case len(req.IDs) == 0 && selecting:
			req.Select = &sel
		case len(req.IDs) == 0:
			return usagef("%s needs message ids (or - to read them from standard input) or filters (--status, --from, --to, --older, --message-id)", name)
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	reply, err := c.ActionRequest(context.Background(), name, req)
	if err != nil {
		return err
	}
	if req.Select != nil && len(reply.Results) == 0 && !*asJSON {
		fmt.Fprintln(a.stdout, "no message matches")
		return nil
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
			switch {
			case r.Error != "":
			case r.Unchanged != "":
				if !everything {
					fmt.Fprintf(a.stdout, "%s: %s\n", r.ID, r.Unchanged)
				}
			case req.Recipients != "":
				fmt.Fprintf(a.stdout, "%s: recipients matching %s %s\n", r.ID, req.Recipients, actionDone[name])
			case !everything:
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
	c, done, err := a.readClient(context.Background())
	if err != nil {
		return err
	}
	defer done()
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
