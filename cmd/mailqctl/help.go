package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// commandDoc is one command's help. A new command needs one entry here
// beside its entry in commands; `mailqctl COMMAND --help` adds the flags
// from the command's own FlagSet, so they cannot drift, and
// TestEveryCommandHasHelp checks that both tables agree.
type commandDoc struct {
	name    string
	args    string // what follows the flags in the usage line
	summary string // one line, for the command list
	text    string // what it does
	example string // one or more command lines
}

var commandDocs = []commandDoc{
	{name: "list", summary: "the messages in the queue and their recipients to do (--json: JSON Lines)",
		text: "Lists the messages still to do (queued, active, deferred, held), or those the filters select,\n" +
			"with their size, age, sender, status, next attempt, recipients left and last reply, each\n" +
			"followed by its recipients still to do and their last reply (as postqueue -p).\n" +
			"--from and --to take an address, @domain or domain; --to matches recipients still to do.\n" +
			"With the daemon stopped it reads the queue file read-only, and says so.",
		example: "mailqctl list --status deferred --older 1h\nmailqctl list --to example.com --ids"},
	{name: "show", args: "ID", summary: "one message: envelope, each recipient's state, every attempt",
		text: "Shows one message in detail, with every delivery attempt and the server's replies;\n" +
			"--transcript adds each attempt's SMTP transcript (AUTH redacted, no body).",
		example: "mailqctl show 0000000000000001 --transcript"},
	{name: "cat", args: "ID", summary: "the stored message as it will be sent (postcat -q)",
		text:    "Prints the stored message, Received: line included, as it will be sent; or its header or body only.",
		example: "mailqctl cat 0000000000000001 --headers"},
	{name: "summary", summary: "recipients to do by domain, sender or route, and by age (qshape)",
		text: "Counts the recipients still to do by destination domain (or sender domain, or route) and by\n" +
			"the age of their message, in Postfix qshape's columns 5m 10m 20m 40m 80m 160m 320m 640m 1280m 1280m+.",
		example: "mailqctl summary\nmailqctl summary --by route --json"},
	{name: "flush", summary: "every deferred message becomes due now",
		text: "Makes every deferred message due now (Postfix: postqueue -f); with --to, only those for that\n" +
			"recipient or domain (postqueue -s). Held messages stay held. The attempts it causes do not\n" +
			"advance the retry schedule.",
		example: "mailqctl flush\nmailqctl flush --to @example.com"},
	{name: "retry", args: "ID...|--all", summary: "those messages become due now (a held one stays held)",
		text: "Makes the given messages (or those the filters select, or with --all every message) due now.\n" +
			"The attempt is recorded but does not advance the retry schedule.",
		example: "mailqctl retry 0000000000000001\nmailqctl list --status deferred --json | jq -r .id | mailqctl retry -"},
	{name: "hold", args: "ID...", summary: "park messages: no attempts, no expiry while held",
		text:    "Holds messages (given, or selected by the filters): they are not attempted and the time held\ndoes not count toward max_lifetime.",
		example: "mailqctl hold 0000000000000001\nmailqctl hold --to @slow.example --older 2h"},
	{name: "release", args: "ID...", summary: "let held messages go, due now",
		text:    "Releases held messages (given, or selected by the filters); they are due at once.",
		example: "mailqctl release 0000000000000001\nmailqctl release --status held"},
	{name: "delete", args: "ID...", summary: "remove messages without a bounce",
		text: "Removes messages (given, or selected by the filters) from the queue; nobody is notified.\n" +
			"With --to, removes only the matching recipients still to do and leaves the rest of each message.",
		example: "mailqctl delete 0000000000000001\nmailqctl delete --to @gone.example"},
	{name: "bounce", args: "ID...", summary: "give up now: bounce every pending recipient",
		text: "Bounces every recipient still to do (with --to, only the matching ones); the sender gets one\n" +
			"delivery status notification (RFC 3464).",
		example: "mailqctl bounce 0000000000000001\nmailqctl bounce --to @gone.example --older 3d"},
	{name: "stats", summary: "counts by status, oldest message, outcome totals, maildrop errors",
		text:    "Prints the queue's counts by status, the age of the oldest message, the outcome totals since\nthe daemon started and the number of files in the maildrop's failed/.",
		example: "mailqctl stats --json"},
	{name: "enqueue", args: "< MESSAGE", summary: "submit a message from standard input; prints its queue id",
		text: "Reads an RFC 5322 message on standard input and stores it with the given envelope; the id is\n" +
			"printed only once the message is on disk.",
		example: "mailqctl enqueue --from me@example.com --to you@example.com < message.eml"},
	{name: "backup", args: "FILE", summary: "write a consistent snapshot of the live queue.db to FILE",
		text: "Streams a snapshot of the whole store (one read transaction) through the control socket into\n" +
			"FILE (0600), while mail goes on being taken and delivered. FILE appears only once it is whole.\n" +
			"To restore: stop mailq, put FILE in place of data_dir/queue.db, start mailq.",
		example: "mailqctl backup /var/backups/mailq-queue.db"},
}

// sendmailDoc is the help of the sendmail interface (its options are
// sendmail's, not Go flags).
var sendmailDoc = commandDoc{name: "sendmail", args: "[-t] [-i] [-f SENDER] [-F NAME] [-N NOTIFY] [-R RET] [-V ENVID] [-bm|-bp|-bi|-q] [--] [RECIPIENT...]",
	summary: "the sendmail(1) interface (also when invoked as sendmail)",
	text: `Submits the message on standard input: through the daemon, or, when this user cannot reach
it, into the maildrop, which every local user may write. Exit 0 exactly when the message is
stored; 64 bad usage, 65 bad message, 75 not stored (try again).
  -t            recipients from To:, Cc: and Bcc: (Bcc: is removed), besides the arguments
  -i, -oi       a line with a single dot does not end the message
  -f SENDER     envelope sender ("<>" for the null sender); default LOGIN@HOSTNAME
  -F NAME       full name for a From: header that sendmail adds
  -N NOTIFY     RFC 3461 NOTIFY: NEVER or SUCCESS,FAILURE,DELAY
  -R RET        RFC 3461 RET: FULL or HDRS
  -V ENVID      RFC 3461 ENVID
  -bp           list the queue (as "mailq"); -q: flush it; -bi: nothing (as "newaliases")
Other historic options are accepted and ignored with a note on stderr.`,
	example: "printf 'Subject: hi\\n\\nhello\\n' | sendmail -i -f app@example.com you@example.com\nsendmail -t < message-with-to-and-cc.eml"}

// docFor returns the help of a command, or false.
func docFor(name string) (commandDoc, bool) {
	if name == sendmailDoc.name {
		return sendmailDoc, true
	}
	for _, d := range commandDocs {
		if d.name == name {
			return d, true
		}
	}
	return commandDoc{}, false
}

const globalUsage = "usage: mailqctl [--socket PATH] [--config FILE] [--maildrop DIR] COMMAND [ARGS]\n"

// usageText is `mailqctl --help`: every command with its summary.
func usageText() string {
	var b strings.Builder
	b.WriteString(globalUsage)
	b.WriteString("\nmailqctl looks at and acts on mailq's queue through the daemon's control socket.\n\ncommands:\n")
	for _, d := range append(append([]commandDoc(nil), commandDocs...), sendmailDoc) {
		fmt.Fprintf(&b, "  %-9s %s\n", d.name, d.summary)
	}
	b.WriteString(`
Run "mailqctl COMMAND --help" for a command's flags and an example.
ID... may be "-" to read ids from standard input, one per line.
Exit status: 0 done, 1 failed, 2 usage, 3 daemon not reachable.
Invoked as "sendmail" it is sendmail(1); as "mailq", "mailqctl list"; as "newaliases", a no-op.
`)
	return b.String()
}

// helpRequested is returned by parseFlags for -h/--help: fail prints the
// command's help with its flags and exits 0.
type helpRequested struct{ fs *flag.FlagSet }

func (h helpRequested) Error() string { return "help requested" }

// globalFlags are accepted by every command; its help names them once.
var globalFlags = map[string]bool{"socket": true, "config": true, "maildrop": true}

// printCommandHelp writes a command's help, with the flags of fs when known.
func printCommandHelp(w io.Writer, d commandDoc, fs *flag.FlagSet) {
	usage := "mailqctl " + d.name
	if fs != nil {
		usage += " [flags]"
	}
	if d.args != "" {
		usage += " " + d.args
	}
	fmt.Fprintf(w, "usage: %s\n\n%s\n", usage, d.text)
	if fs != nil {
		var flags []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) {
			if !globalFlags[f.Name] {
				flags = append(flags, f)
			}
		})
		sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
		if len(flags) > 0 {
			fmt.Fprintf(w, "\nflags:\n")
			for _, f := range flags {
				arg, usage := flag.UnquoteUsage(f)
				name := "--" + f.Name
				if arg != "" {
					name += " " + arg
				}
				fmt.Fprintf(w, "  %-22s %s\n", name, usage)
			}
		}
		fmt.Fprintf(w, "\nThe global --socket PATH, --config FILE and --maildrop DIR may also follow the command.\n")
	}
	fmt.Fprintf(w, "\nexample:\n")
	for _, line := range strings.Split(d.example, "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// cmdHelp is `mailqctl help [COMMAND]`.
func (a *app) cmdHelp(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stdout, usageText())
		return nil
	}
	if len(args) > 1 {
		return usagef("help takes one command name")
	}
	d, ok := docFor(args[0])
	if !ok {
		return usagef("no command %q", args[0])
	}
	cmd, ok := commands[d.name]
	if !ok {
		printCommandHelp(a.stdout, d, nil)
		return nil
	}
	// The command's own FlagSet knows its flags: ask it.
	err := cmd(a, []string{"--help"})
	var h helpRequested
	if errors.As(err, &h) {
		printCommandHelp(a.stdout, d, h.fs)
		return nil
	}
	printCommandHelp(a.stdout, d, nil)
	return nil
}
