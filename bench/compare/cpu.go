package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Debian ships.
const clockTicks = 100

// cpuOf is the CPU time (user + system) the processes pids have used,
// counting the children they have reaped (cutime, cstime): Postfix's
// master reaps its smtpd, cleanup and smtp processes, so one that ran and
// exited during a figure still counts, through its parent.
func cpuOf(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		// utime, stime, cutime and cstime are fields 14-17.
		f := statFields(strconv.Itoa(pid))
		if len(f) < 15 {
			continue
		}
		for _, s := range f[11:15] {
			n, _ := strconv.ParseInt(s, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// selfCPU is this process's own CPU time: the sink's captures are read
// and counted here, and that costs the box CPU too.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuSplit is the CPU one figure took, by process, while n messages passed.
type cpuSplit struct {
	n                                   int
	wall, system, source, sink, harness time.Duration
}

// cpuMeter takes the readings a cpuSplit is the difference of.
type cpuMeter struct {
	systemPIDs func() []int
	sinkPID    int
	start      time.Time
	sys, sink  time.Duration
	self       time.Duration
}

func startCPU(systemPIDs func() []int, sinkPID int) *cpuMeter {
	m := &cpuMeter{systemPIDs: systemPIDs, sinkPID: sinkPID, start: time.Now(), self: selfCPU(), sink: cpuOf([]int{sinkPID})}
	if systemPIDs != nil {
		m.sys = cpuOf(systemPIDs())
	}
	return m
}

func (m *cpuMeter) stop(n int, source time.Duration) cpuSplit {
	c := cpuSplit{n: n, wall: time.Since(m.start), source: source,
		sink: cpuOf([]int{m.sinkPID}) - m.sink, harness: selfCPU() - m.self}
	if m.systemPIDs != nil {
		c.system = cpuOf(m.systemPIDs()) - m.sys
	}
	return c
}

// perMessage is d per message of the split, in milliseconds.
func (c cpuSplit) perMessage(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond) / float64(c.n)
}

// rig is the CPU of what measures rather than what is measured.
func (c cpuSplit) rig() time.Duration { return c.source + c.sink + c.harness }

// addCPU keeps the large figure's CPU split of run r: a row of the CPU
// table, and the system's and the rig's CPU per message for the main
// table (system "" is the ceiling, where there is only the rig).
func (r *results) addCPU(run int, label, system string, c cpuSplit) {
	r.cpu.add(fmt.Sprintf("%d: %s", run, label), c)
	if system != "" {
		r.add("cpusys", system, run, c.perMessage(c.system))
	}
	r.add("cpurig", system, run, c.perMessage(c.rig()))
}

// cpuLog collects the splits of the large figure for the table's footnote.
type cpuLog struct{ rows []string }

func (l *cpuLog) add(label string, c cpuSplit) {
	per := func(d time.Duration) string { return fmt.Sprintf("%.2f", c.perMessage(d)) }
	total := c.system + c.rig()
	l.rows = append(l.rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %.2f of %d |", label, per(c.system), per(c.source), per(c.sink), per(c.harness), per(total),
		float64(total)/float64(c.wall), runtime.NumCPU()))
}

func (l *cpuLog) print(w io.Writer, size int) {
	if len(l.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU per message at %d KiB (ms; user+system from /proc, children reaped included), by process, and the cores all of them kept busy:\n\n", size>>10)
	fmt.Fprintln(w, "| run: figure | system under test | smtp-source | smtp-sink | compare (counts the sink's captures) | all | cores busy |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range l.rows {
		fmt.Fprintln(w, r)
	}
}
