package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"mailq/control/server"
)

// TestEveryCommandHasHelp is issue 12 item 8: every command answers
// --help (and `help COMMAND`) on stdout with exit 0, with what it does,
// each of its own flags and an example; the command list names them all.
func TestEveryCommandHasHelp(t *testing.T) {
	documented := map[string]bool{}
	for _, d := range commandDocs {
		documented[d.name] = true
		if _, ok := commands[d.name]; !ok {
			t.Errorf("help for %q, which is not a command", d.name)
		}
		if d.summary == "" || d.text == "" || d.example == "" {
			t.Errorf("help for %q lacks a summary, a text or an example", d.name)
		}
	}
	var names []string
	for name := range commands {
		names = append(names, name)
		if !documented[name] {
			t.Errorf("command %q has no entry in commandDocs", name)
		}
	}
	sort.Strings(names)
	top := exe(t, "mailqctl", nil, "", "--help")
	if top.code != 0 || top.stderr != "" {
		t.Fatalf("mailqctl --help: exit %d, stderr %q", top.code, top.stderr)
	}
	for _, name := range append(names, "sendmail") {
		if !strings.Contains(top.stdout, "\n  "+name+" ") {
			t.Errorf("mailqctl --help does not list %q:\n%s", name, top.stdout)
		}
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			if name == "sendmail" && args[1] == "-h" {
				continue // sendmail's -h is the historic hop count
			}
			r := exe(t, "mailqctl", nil, "", args...)
			if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage: mailqctl "+name) || !strings.Contains(r.stdout, "example:\n  ") {
				t.Errorf("mailqctl %v: exit %d, stderr %q, stdout:\n%s", args, r.code, r.stderr, r.stdout)
			}
			if name == "sendmail" {
				continue
			}
			// Each of the command's own flags is described.
			fs := flagsOf(t, name)
			fs.VisitAll(func(f *flag.Flag) {
				if !globalFlags[f.Name] && !strings.Contains(r.stdout, "--"+f.Name) {
					t.Errorf("mailqctl %v does not describe --%s:\n%s", args, f.Name, r.stdout)
				}
			})
		}
	}
	if r := exe(t, "mailqctl", nil, "", "list", "--no-such-flag"); r.code != 2 || !strings.Contains(r.stderr, "usage:") {
		t.Errorf("unknown flag: exit %d, stderr %q; want 2 with the usage", r.code, r.stderr)
	}
}

// flagsOf returns the FlagSet a command parses with.
func flagsOf(t *testing.T, name string) *flag.FlagSet {
	t.Helper()
	a := &app{}
	err := commands[name](a, []string{"--help"})
	h, ok := err.(helpRequested)
	if !ok {
		t.Fatalf("%s --help returned %v, want helpRequested", name, err)
	}
	return h.fs
}

// TestOtherNames is issue 12 item 4: invoked as mailq it lists the queue
// as Postfix's mailq does, as newaliases (and sendmail -bi) it does
// nothing and says why, exit 0.
func TestOtherNames(t *testing.T) {
	d := startDaemon(t, server.Options{})
	id := d.enqueue(t, "a@example.com", "b@example.org")
	link := filepath.Join(t.TempDir(), "mailq")
	if err := os.Symlink(filepath.Join(binDir, "mailqctl"), link); err != nil {
		t.Fatal(err)
	}
	r := exeCmd(t, exec.Command(link), []string{"MAILQ_CONFIG=" + d.config}, "")
	if r.code != 0 || !strings.Contains(r.stdout, string(id)) || !strings.Contains(r.stdout, "a@example.com") {
		t.Errorf("mailq: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"newaliases"}, {"sendmail", "-bi"}} {
		bin := filepath.Join(t.TempDir(), args[0])
		if err := os.Symlink(filepath.Join(binDir, "mailqctl"), bin); err != nil {
			t.Fatal(err)
		}
		r := exeCmd(t, exec.Command(bin, args[1:]...), []string{"MAILQ_CONFIG=" + d.config}, "")
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "nothing to do") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestEveryCommandIsInTheReference keeps mailqctl(1) and docs/cli.md
// true: each command, and each of its flags, appears in both.
func TestEveryCommandIsInTheReference(t *testing.T) {
	roff, err := os.ReadFile("../../man/mailqctl.1")
	if err != nil {
		t.Fatal(err)
	}
	man := strings.NewReplacer(`\-`, "-", `\e`, `\`, `\fI`, "", `\fR`, "", `\fB`, "").Replace(string(roff))
	md, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range commands {
		if !strings.Contains(man, "\n.B "+name+"\n") && !strings.Contains(man, "\n.B "+name+" ") {
			t.Errorf("mailqctl %s is not in man/mailqctl.1's COMMANDS", name)
		}
		if !strings.Contains(string(md), "| `"+name) {
			t.Errorf("mailqctl %s is not in docs/cli.md's command table", name)
		}
		flagsOf(t, name).VisitAll(func(f *flag.Flag) {
			if globalFlags[f.Name] {
				return
			}
			if !strings.Contains(man, "--"+f.Name) {
				t.Errorf("mailqctl %s --%s is not in man/mailqctl.1", name, f.Name)
			}
			if !strings.Contains(string(md), "--"+f.Name) {
				t.Errorf("mailqctl %s --%s is not in docs/cli.md", name, f.Name)
			}
		})
	}
}
