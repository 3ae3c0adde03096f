package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"mailq/control"
	"mailq/intake"
	"mailq/queue"
)

// sendmail(1) exit statuses (sysexits.h).
const (
	exUsage    = 64 // EX_USAGE: bad command line
	exDataErr  = 65 // EX_DATAERR: the message itself is malformed
	exTempFail = 75 // EX_TEMPFAIL: not stored; the caller should try again
)

// sendmailOptions is the parsed sendmail command line.
type sendmailOptions struct {
	extractRecipients bool   // -t
	ignoreDots        bool   // -i, -oi
	sender            string // -f
	senderSet         bool
	fullName          string // -F
	notify, ret       string // -N, -R (normalised)
	envid             string // -V
	mode              byte   // 'm' deliver (default), 'p' list (-bp), 'q' flush (-q), 'i' newaliases (-bi)
	recipients        []string
}

// parseSendmailArgs reads sendmail's getopt-style options: clustered
// ("-ti"), with values attached ("-fme@x") or separate ("-f me@x"), then
// recipients; "--" ends the options. Historic options mailq has no use for
// are accepted and logged through ignored.
func parseSendmailArgs(args []string, ignored func(opt string)) (sendmailOptions, error) {
	o := sendmailOptions{mode: 'm'}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			o.recipients = append(o.recipients, args[i+1:]...)
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			o.recipients = append(o.recipients, arg)
			continue
		}
		for j := 1; j < len(arg); j++ {
			c := arg[j]
			// value returns the option's argument: the rest of this word, or the next word.
			value := func() (string, error) {
				if rest := arg[j+1:]; rest != "" {
					j = len(arg)
					return rest, nil
				}
				if i+1 >= len(args) {
					return "", fmt.Errorf("option -%c needs a value", c)
				}
				i++
				j = len(arg)
				return args[i], nil
			}
			var v string
			var err error
			switch c {
			case 't':
				o.extractRecipients = true
			case 'i':
				o.ignoreDots = true
			case 'f', 'r': // -r is the historic spelling of -f
				if v, err = value(); err == nil {
					o.sender, o.senderSet = v, true
				}
			case 'F':
				o.fullName, err = value()
			case 'N':
				if v, err = value(); err == nil {
					o.notify, err = intake.NormalizeNotify(v)
				}
			case 'R':
				if v, err = value(); err == nil {
					o.ret, err = intake.NormalizeRet(v)
				}
			case 'V':
				o.envid, err = value()
			case 'b':
				if v, err = value(); err == nil {
					switch v {
					case "m":
						o.mode = 'm'
					case "p":
						o.mode = 'p'
					case "i": // newaliases
						o.mode = 'i'
					default:
						err = fmt.Errorf("-b%s is not supported (mailq's sendmail knows -bm, -bp and -bi)", v)
					}
				}
			case 'q':
				o.mode = 'q' // an attached interval (-q15m) is a daemon option: ignored
				j = len(arg)
			case 'o':
				if v, err = value(); err == nil {
					if v == "i" {
						o.ignoreDots = true
					} else {
						ignored("-o" + v)
					}
				}
			case 'O', 'h', 'L', 'X', 'C', 'B', 'e', 'd', 'A':
				if v, err = value(); err == nil {
					ignored("-" + string(c) + v)
				}
			case 'v', 'm', 'n', 'x', 'U', 'G', 's':
				ignored("-" + string(c))
			default:
				err = fmt.Errorf("unknown option -%c", c)
			}
			if err != nil {
				return o, err
			}
		}
	}
	return o, nil
}

// sendmail runs the sendmail(1) interface and returns its exit status.
func (a *app) sendmail(args []string) int {
	if len(args) == 1 && args[0] == "--help" { // -h is sendmail's hop count
		printCommandHelp(a.stdout, sendmailDoc, nil)
		return exitOK
	}
	o, err := parseSendmailArgs(args, func(opt string) {
		fmt.Fprintf(a.stderr, "sendmail: ignoring option %s (it has no meaning for mailq)\n", opt)
	})
	if err != nil {
		fmt.Fprintf(a.stderr, "sendmail: %v\nusage: sendmail [-t] [-i] [-f sender] [-F name] [-N notify] [-R ret] [-V envid] [--] [recipient...]\n(sendmail --help for more)\n", err)
		return exUsage
	}
	switch o.mode {
	case 'p':
		return a.fail(a.cmdList(nil))
	case 'q':
		return a.fail(a.cmdFlush(nil))
	case 'i':
		return a.newaliases()
	}
	status, err := a.submit(o)
	if err != nil {
		fmt.Fprintf(a.stderr, "sendmail: %v\n", err)
	}
	return status
}

// submit reads the message, builds the envelope and stores it: through the
// daemon, or into the maildrop when the daemon cannot be reached.
func (a *app) submit(o sendmailOptions) (int, error) {
	hostname := a.hostname()
	sender := o.sender
	if !o.senderSet {
		sender = loginName() + "@" + hostname
	}
	sender = strings.TrimSpace(sender)
	if sender == "<>" {
		sender = ""
	}
	sender = strings.TrimSuffix(strings.TrimPrefix(sender, "<"), ">")

	msg, err := readMessage(a.stdin, !o.ignoreDots)
	if err != nil {
		return exDataErr, err
	}
	recipients := o.recipients
	if o.extractRecipients {
		fromHeader, err := intake.ParseHeaderRecipients(msg.header)
		if err != nil {
			return exDataErr, fmt.Errorf("-t: %w", err)
		}
		recipients = append(recipients, fromHeader...)
	}
	if len(recipients) == 0 {
		return exUsage, errors.New("no recipients: give them as arguments or use -t to take them from To:, Cc: and Bcc:")
	}
	from := sender
	if from == "" {
		from = loginName() + "@" + hostname
	}
	if err := msg.complete(o.fullName, from, hostname, time.Now()); err != nil {
		return exTempFail, err
	}

	env := queue.Envelope{Sender: sender, EnvID: o.envid, Ret: o.ret}
	for _, r := range recipients {
		env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: r, Notify: o.notify})
	}
	body := &countingReader{r: msg.reader()}

	client, clientErr := a.client()
	if clientErr == nil {
		_, err = client.Enqueue(context.Background(), env, body, "sendmail")
		if err == nil {
			return exitOK, nil
		}
		var apiErr *control.APIError
		switch {
		case errors.As(err, &apiErr) && (apiErr.Status == 400 || apiErr.Status == 413):
			if strings.HasPrefix(apiErr.Message, "message refused") {
				return exDataErr, err // the daemon says so already
			}
			return exDataErr, fmt.Errorf("message refused: %w", err)
		case !errors.Is(err, control.ErrUnreachable) && !(errors.As(err, &apiErr) && apiErr.Status == 403):
			return exTempFail, fmt.Errorf("message not stored: %w", err)
		}
	} else {
		err = clientErr
	}
	// The daemon is down (or refuses this user): the maildrop keeps the
	// message until it is back. Only possible while nothing was read yet.
	if body.n > 0 {
		return exTempFail, fmt.Errorf("message not stored: the daemon went away while it was being sent (%v)", err)
	}
	dir, derr := a.maildropDir()
	if derr != nil {
		return exTempFail, fmt.Errorf("message not stored: daemon unavailable (%v) and no maildrop: %w", err, derr)
	}
	_, derr = intake.DropFile(dir, env, body)
	var notSynced *intake.NotSyncedError
	switch {
	case errors.As(derr, &notSynced):
		// Stored: the daemon will take it. Failing now would make the
		// caller send it again (docs/maildrop.md "Durability").
		fmt.Fprintf(a.stderr, "sendmail: warning: %v\n", derr)
	case derr != nil:
		return exTempFail, fmt.Errorf("message not stored: daemon unavailable (%v), and the maildrop failed: %w", err, derr)
	}
	return exitOK, nil
}

// hostname is the configured hostname, else the system's.
func (a *app) hostname() string {
	if c, err := a.clientSettings(); err == nil && c.Hostname != "" {
		return c.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// loginName is the caller's user name, as sendmail uses for the default sender.
func loginName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, k := range []string{"LOGNAME", "USER"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return fmt.Sprintf("uid%d", os.Getuid())
}

// countingReader counts bytes read, so sendmail knows whether the message
// can still go to the maildrop after a failed submission.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
