package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// results holds one value per figure, system and run.
type results struct {
	v   map[string]map[string][]float64 // figure → system ("" for the machine) → per run
	cpu cpuLog                          // CPU by process during the large figure and its ceiling
}

func newResults() *results { return &results{v: map[string]map[string][]float64{}} }

func (r *results) add(fig, system string, run int, value float64) {
	if r.v[fig] == nil {
		r.v[fig] = map[string][]float64{}
	}
	r.v[fig][system] = append(r.v[fig][system], value)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *results) median(fig, system string) (float64, bool) {
	xs := r.v[fig][system]
	return median(xs), len(xs) > 0
}

func (r *results) runs(fig, system string, format string) string {
	var parts []string
	for _, x := range r.v[fig][system] {
		parts = append(parts, fmt.Sprintf(format, x))
	}
	return strings.Join(parts, ", ")
}

type figure struct {
	key, label, format string
}

func printTable(w io.Writer, header string, o options, r *results) {
	figs := []figure{
		{"intake", "SMTP submission, durable 250 (msg/s; route held)", "%.0f"},
		{"e2e", "end to end, SMTP in → all at the sink (msg/s)", "%.0f"},
		{"e2e10", fmt.Sprintf("end to end, 10 recipients (msg/s; %d messages)", o.rcptMessages), "%.0f"},
		{"e2elarge", fmt.Sprintf("end to end, %d KiB (msg/s; %d messages)", o.largeSize>>10, o.largeMessages), "%.0f"},
		{"cpusys", fmt.Sprintf("… CPU per %d KiB message, the system (ms)", o.largeSize>>10), "%.2f"},
		{"cpurig", fmt.Sprintf("… CPU per %d KiB message, the rig: smtp-source + smtp-sink + compare (ms; at the ceiling %s)", o.largeSize>>10, r.runs("cpurig", "", "%.2f")), "%.2f"},
		{"sendmail", fmt.Sprintf("`sendmail -t -i`, one process per message (msg/s; %d)", o.sendmailN), "%.1f"},
		{"sendmail-baseline", fmt.Sprintf("same, mailq column: --baseline-mailqctl (msg/s; %d)", o.sendmailN), "%.1f"},
		{"flushed", "held queue after restart: flush → all at the sink (msg/s)", "%.0f"},
		{"rss", "daemon peak RSS, all processes (MiB)", "%.0f"},
		{"rsse2e", "daemon peak RSS during the end-to-end figure (MiB)", "%.0f"},
		{"pss", "daemon peak PSS, all processes (MiB)", "%.0f"},
	}
	fmt.Fprintf(w, "\n%s\n\n", header)
	fmt.Fprintln(w, "| figure | Postfix | mailq | ratio mailq/Postfix | runs: Postfix; mailq |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	cell := func(fig, sys, format string) string {
		if v, ok := r.median(fig, sys); ok {
			return fmt.Sprintf(format, v)
		}
		return "—"
	}
	for _, f := range figs {
		fig, sys := f.key, "mailq"
		if f.key == "sendmail-baseline" {
			if _, ok := r.median("sendmail", "mailq-baseline"); !ok {
				continue
			}
			fig, sys = "sendmail", "mailq-baseline"
		}
		if len(r.v[fig]) == 0 {
			continue // not measured (--figures)
		}
		ratio := "—"
		p, okp := r.median(fig, "postfix")
		m, okm := r.median(fig, sys)
		if okp && okm && p > 0 && f.key != "cpurig" { // the rig's cost is not the systems' to compare
			ratio = fmt.Sprintf("%.2f×", m/p)
		}
		ceiling, haveCeiling := r.median("ceiling", "")
		if f.key == "e2elarge" { // smtp-source → smtp-sink at the large size
			ceiling, haveCeiling = r.median("ceilinglarge", "")
		}
		if (f.key == "e2e" || f.key == "e2elarge") && haveCeiling && ceiling > 0 {
			var of []string
			if okp {
				of = append(of, fmt.Sprintf("Postfix %.2f×", p/ceiling))
			}
			if okm {
				of = append(of, fmt.Sprintf("mailq %.2f×", m/ceiling))
			}
			ratio += " (of the ceiling: " + strings.Join(of, ", ") + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s; %s |\n", f.label, cell(fig, "postfix", f.format), cell(fig, sys, f.format),
			ratio, r.runs(fig, "postfix", f.format), r.runs(fig, sys, f.format))
	}
	if b, ok := r.median("sendmail", "mailq-baseline"); ok && b > 0 {
		m, _ := r.median("sendmail", "mailq")
		var per []string
		for i, x := range r.v["sendmail"]["mailq"] {
			if i < len(r.v["sendmail"]["mailq-baseline"]) {
				per = append(per, fmt.Sprintf("%.2f×", x/r.v["sendmail"]["mailq-baseline"][i]))
			}
		}
		fmt.Fprintf(w, "\nsendmail, this tree's mailqctl / --baseline-mailqctl, same daemon, blocks alternating: %.2f× (medians; per run %s).\n", m/b, strings.Join(per, ", "))
	}
	var machine []string
	if _, ok := r.median("ceiling", ""); ok {
		machine = append(machine, fmt.Sprintf("loopback ceiling (smtp-source → smtp-sink) %s msg/s (runs %s)", cell("ceiling", "", "%.0f"), r.runs("ceiling", "", "%.0f")))
	}
	if _, ok := r.median("ceilinglarge", ""); ok {
		machine = append(machine, fmt.Sprintf("loopback ceiling at %d KiB %s msg/s (runs %s)", o.largeSize>>10, cell("ceilinglarge", "", "%.0f"), r.runs("ceilinglarge", "", "%.0f")))
	}
	machine = append(machine, fmt.Sprintf("disk %s fsyncs/s of 4 KiB (runs %s)", cell("fsync", "", "%.0f"), r.runs("fsync", "", "%.0f")))
	fmt.Fprintf(w, "\nThe machine in the same runs: %s.\n", strings.Join(machine, "; "))
	fmt.Fprintln(w, "Every recipient of every figure arrived at the sink exactly once.")
}
