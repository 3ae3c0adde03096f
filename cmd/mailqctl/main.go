// Command mailqctl controls a running mailq daemon over its control socket,
// and is mailq's sendmail(1) when invoked as "sendmail".
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"mailq/config/clientconf"
	"mailq/control"
)

// Exit statuses (docs/cli.md).
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// usageError is a command line mistake: exit 2 with the usage hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// app holds what every command shares: where the daemon and the maildrop
// are, and the standard streams (tests run commands through the binary).
type app struct {
	socket, configPath, maildrop string
	stdin                        io.Reader
	stdout, stderr               io.Writer

	settings    clientconf.Client
	settingsErr error
	loaded      bool
}

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(a.runAs(filepath.Base(os.Args[0]), os.Args[1:]))
}

// runAs answers to the name it was invoked by, as the sendmail world
// expects of these names (docs/cli.md "Other names").
func (a *app) runAs(name string, args []string) int {
	switch name {
	case "sendmail":
		return a.sendmail(args)
	case "mailq": // Postfix's and sendmail's mailq: list the queue
		return a.run(append([]string{"list"}, args...))
	case "newaliases":
		return a.newaliases()
	}
	return a.run(args)
}

// newaliases is the sendmail world's alias database rebuild: mailq only
// relays outbound and has no aliases, so there is nothing to rebuild.
func (a *app) newaliases() int {
	fmt.Fprintln(a.stderr, "newaliases: nothing to do: mailq relays mail outbound and keeps no aliases database (local aliases belong to the MTA that delivers locally)")
	return exitOK
}

// run parses the global flags and runs one command, returning the exit status.
func (a *app) run(args []string) int {
	rest, err := a.parseGlobal(args)
	if err == nil && len(rest) == 0 {
		err = usagef("no command given")
	}
	if err != nil {
		return a.fail(err)
	}
	name, rest := rest[0], rest[1:]
	if name == "sendmail" {
		return a.sendmail(rest)
	}
	if name == "help" {
		return a.fail(a.cmdHelp(rest))
	}
	cmd, ok := commands[name]
	if !ok {
		return a.fail(usagef("unknown command %q", name))
	}
	return a.fail(cmd(a, rest))
}

// parseGlobal consumes --socket, --config and --maildrop before the command.
func (a *app) parseGlobal(args []string) ([]string, error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		var target *string
		switch name {
		case "socket":
			target = &a.socket
		case "config":
			target = &a.configPath
		case "maildrop":
			target = &a.maildrop
		case "h", "help":
			return []string{"help"}, nil
		default:
			return nil, usagef("unknown option %s before the command", args[0])
		}
		args = args[1:]
		if !hasValue {
			if len(args) == 0 {
				return nil, usagef("--%s needs a value", name)
			}
			value, args = args[0], args[1:]
		}
		*target = value
	}
	return args, nil
}

// fail prints err (if any) and maps it to an exit status.
func (a *app) fail(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	var help helpRequested
	switch {
	case errors.As(err, &help):
		if d, ok := docFor(help.fs.Name()); ok {
			printCommandHelp(a.stdout, d, help.fs)
		} else {
			fmt.Fprint(a.stdout, usageText())
		}
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "mailqctl: %v\n\n%s", err, usageText())
		return exitUsage
	case errors.Is(err, control.ErrUnreachable):
		fmt.Fprintf(a.stderr, "mailqctl: %v\n", err)
		return exitUnreachable
	case errors.Is(err, errReported):
		return exitFailed
	default:
		fmt.Fprintf(a.stderr, "mailqctl: %v\n", err)
		return exitFailed
	}
}

// errReported means the command already printed why it failed.
var errReported = errors.New("failed (reported above)")

// clientSettings is where the daemon and the maildrop are, read once from
// the configuration (--config, $MAILQ_CONFIG, /etc/mailq/mailq.toml, else
// the embedded defaults): only the keys a client needs (package
// clientconf), so sendmail starts fast. When this user may not read the
// configuration (mailq.toml is 0640 root:mailq when installed, yet every
// user may run sendmail), the world-readable client.toml beside it or the
// installed layout's paths.
func (a *app) clientSettings() (clientconf.Client, error) {
	if !a.loaded {
		a.loaded = true
		path := clientconf.Find(a.configPath)
		a.settings, a.settingsErr = clientconf.Read(path)
		switch {
		case path != "" && errors.Is(a.settingsErr, fs.ErrPermission):
			a.settings, a.settingsErr = clientconf.LoadFallback(path)
		case a.settingsErr != nil:
			a.settingsErr = fmt.Errorf("loading the configuration: %w (or give --socket/--maildrop)", a.settingsErr)
		}
	}
	return a.settings, a.settingsErr
}

// client returns a control client for --socket or the configured socket.
func (a *app) client() (*control.Client, error) {
	if a.socket != "" {
		return control.NewClient(a.socket), nil
	}
	c, err := a.clientSettings()
	if err != nil {
		return nil, err
	}
	return control.NewClient(c.Socket), nil
}

// maildropDir returns --maildrop or the configured maildrop.
func (a *app) maildropDir() (string, error) {
	if a.maildrop != "" {
		return a.maildrop, nil
	}
	c, err := a.clientSettings()
	if err != nil {
		return "", err
	}
	return c.Maildrop, nil
}
