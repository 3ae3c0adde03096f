// Command mailq is the mail queue daemon: it takes mail in, stores it
// durably and delivers it along its configured routes (docs/).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
	"mailq/config"
)

// version is set at build time with -ldflags "-X main.version=…"; without
// it, the module version or VCS revision from the build info is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageText is `mailq --help` (docs/cli.md, man/mailq.8).
const usageText = `usage: mailq [--config FILE] [--foreground] [--check-config] [--version]

mailq is the mail queue daemon: it takes mail in (SMTP submission, the
control socket, the maildrop), stores it durably and delivers it along its
routes. It is started by systemd (mailq.service); to look at or act on the
queue, use mailqctl (or "mailq" where mailqctl is installed under that name).

options:
`

const exampleText = `
examples:
  mailq --check-config --config /etc/mailq/mailq.toml   # validate, print it with secrets masked
  mailq --foreground                                    # a daemon here, on the embedded defaults (data in ./mailq-data)
  MAILQ_CONFIG=$PWD/mailq.toml mailq 2>>mailq.log &     # a daemon on a file of your own

See mailq(8), mailq.toml(5) and docs/ in the source.
`

// run is main without os.Exit, returning the exit status: 0 clean stop or
// valid configuration, 1 failure, 2 usage error.
func run(args []string, stdout, stderr io.Writer) int {
	return runWith(args, stdout, stderr, stdinIsTerminal)
}

// runWith is run with the terminal test replaceable.
func runWith(args []string, stdout, stderr io.Writer, interactive func() bool) int {
	if len(args) > 0 {
		if cmd, ok := storeCommands[args[0]]; ok { // storecmds.go
			return cmd(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("mailq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `FILE` (default: $MAILQ_CONFIG, then "+config.SystemPath+" if it exists, else the embedded defaults)")
	checkOnly := fs.Bool("check-config", false, "validate the configuration, print it with secrets masked, and exit (0 valid, 1 not)")
	foreground := fs.Bool("foreground", false, "run even from a terminal with no configuration file (on the embedded defaults: data in ./mailq-data)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), exampleText)
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			// Asked for: on stdout, exit 0 (an error's hint goes to stderr).
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mailq: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "mailq %s\n", versionString())
		return 0
	}

	path := config.Find(*configPath)
	if path == "" && !*checkOnly && !*foreground && interactive() {
		// Someone typed "mailq" expecting the sendmail-world queue listing,
		// or started the daemon by accident: a daemon here would make
		// ./mailq-data and take the default ports.
		fmt.Fprint(stderr, refuseText)
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "mailq: invalid configuration:\n%v\n", err)
		return 1
	}
	secretErrs := cfg.CheckSecrets()
	if *checkOnly {
		if len(secretErrs) > 0 {
			fmt.Fprintf(stderr, "mailq: invalid configuration:\n%v\n", errors.Join(secretErrs...))
			return 1
		}
		fmt.Fprint(stdout, cfg.String())
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "mailq: warning: %s\n", w)
		}
		if cfg.Queue.Postgres() {
			return checkPostgres(cfg, stdout, stderr) // openpg.go
		}
		return 0
	}

	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	for _, err := range secretErrs {
		// Mail for that route is deferred until the secret is there.
		log.Error().Err(err).Msg("a route's secret is missing; its mail waits until it is provided")
	}
	if err := runDaemon(cfg, log); err != nil {
		log.Error().Err(err).Msg("mailq stopped on an error")
		return 1
	}
	return 0
}

const refuseText = `mailq: this is the mail queue daemon, and no configuration file was found
(no --config, no $MAILQ_CONFIG, no ` + config.SystemPath + `).
  to see the queue:            mailqctl list
  to run a daemon here anyway: mailq --foreground   (embedded defaults: data in ./mailq-data,
                               SMTP on 127.0.0.1:2525, delivery to localhost:25)
`

// stdinIsTerminal reports whether standard input is a terminal: someone
// typed the command (systemd gives the daemon /dev/null).
func stdinIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
