// Command mailq is the mail queue daemon: it takes mail in, stores it
// durably and delivers it along its configured routes (interfaces.md).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"mailq/config"
)

// version is set at build time with -ldflags "-X main.version=…"; without
// it, the module version or VCS revision from the build info is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, returning the exit status: 0 clean stop or
// valid configuration, 1 failure, 2 usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default: $MAILQ_CONFIG, then "+config.SystemPath+" if it exists, else the embedded defaults)")
	checkOnly := fs.Bool("check-config", false, "validate the configuration, print it with secrets masked, and exit (0 valid, 1 not)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailq [--config FILE] [--check-config] [--version]\n")
		fs.PrintDefaults()
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
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "mailq: invalid configuration:\n%v\n", err)
		return 1
	}
	if *checkOnly {
		fmt.Fprint(stdout, cfg.String())
		return 0
	}

	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err := runDaemon(cfg, log); err != nil {
		log.Error().Err(err).Msg("mailq stopped on an error")
		return 1
	}
	return 0
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
