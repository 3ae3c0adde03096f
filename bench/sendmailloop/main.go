// Command sendmailloop times sendmail -t -i, one process per message,
// against a running daemon, for several sendmail binaries in the same run:
// blocks of messages alternate between the binaries, so the load others put
// on the machine falls on all of them alike, and the figure to quote is the
// ratio of their medians (issue 13). Wall time per message includes the
// daemon's durable commit; the CPU time is the sendmail process's own
// (user+system, from its rusage), the steadier figure on a busy machine,
// with its minor page faults and context switches per message (on a
// virtual machine each costs microseconds).
//
//	go run ./bench/sendmailloop --config /path/mailq.toml --n 300 old/sendmail new/sendmail
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	config := flag.String("config", "", "the running daemon's configuration (MAILQ_CONFIG for each sendmail)")
	n := flag.Int("n", 300, "messages per binary")
	block := flag.Int("block", 20, "messages per block; blocks alternate between the binaries")
	size := flag.Int("size", 4096, "body size in bytes")
	to := flag.String("to", "sendmailloop.bench", "recipient domain (To: s<i>@domain)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: sendmailloop [flags] sendmail-binary...\n(a binary not named sendmail is run through a symlink of that name)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	bins := flag.Args()
	if len(bins) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	links, cleanup, err := sendmailLinks(bins)
	if err != nil {
		fail(err)
	}
	defer cleanup()

	body := strings.Repeat(strings.Repeat("x", 77)+"\n", *size/78+1)[:*size]
	perMsg := make([][]float64, len(bins)) // per block: seconds per message
	cpuMsg := make([][]float64, len(bins)) // per block: CPU seconds (user+system) per message
	faults := make([]int64, len(bins))     // minor page faults, all messages
	switches := make([]int64, len(bins))   // context switches (voluntary and not), all messages
	count := make([]int, len(bins))
	sent := 0
	for done := 0; done < *n; done += *block {
		k := min(*block, *n-done)
		for j := range links {
			// Rotate who goes first, so no binary always follows the same one.
			b := (j + done / *block) % len(links)
			start := time.Now()
			var cpu time.Duration
			for i := 0; i < k; i++ {
				sent++
				msg := fmt.Sprintf("From: a@example.com\nTo: s%d@%s\nSubject: loop %d\n\n%s", sent, *to, sent, body)
				cmd := exec.Command(links[b], "-t", "-i", "-f", "a@example.com")
				if *config != "" {
					cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+*config)
				}
				cmd.Stdin = strings.NewReader(msg)
				if out, err := cmd.CombinedOutput(); err != nil {
					fail(fmt.Errorf("%s, message %d: %v: %s", bins[b], sent, err, strings.TrimSpace(string(out))))
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					faults[b] += ru.Minflt
					switches[b] += ru.Nvcsw + ru.Nivcsw
				}
				count[b]++
			}
			perMsg[b] = append(perMsg[b], time.Since(start).Seconds()/float64(k))
			cpuMsg[b] = append(cpuMsg[b], cpu.Seconds()/float64(k))
		}
	}
	base, baseCPU := 0.0, 0.0
	for b, bin := range bins {
		med, cpu := median(perMsg[b]), median(cpuMsg[b])
		if b == 0 {
			base, baseCPU = med, cpu
		}
		fmt.Printf("%-40s %6.2f ms/msg %6.1f msg/s (×%.2f of the first); sendmail's own CPU %5.2f ms/msg (×%.2f), %d page faults, %d context switches\n",
			bin, med*1000, 1/med, base/med, cpu*1000, baseCPU/cpu, faults[b]/int64(max(count[b], 1)), switches[b]/int64(max(count[b], 1)))
	}
}

// sendmailLinks gives each binary a path whose base name is "sendmail",
// since mailqctl acts as sendmail by argv[0].
func sendmailLinks(bins []string) ([]string, func(), error) {
	dir, err := os.MkdirTemp("", "sendmailloop")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	var links []string
	for i, b := range bins {
		if filepath.Base(b) == "sendmail" {
			links = append(links, b)
			continue
		}
		abs, err := filepath.Abs(b)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		link := filepath.Join(dir, fmt.Sprint(i), "sendmail")
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			cleanup()
			return nil, nil, err
		}
		if err := os.Symlink(abs, link); err != nil {
			cleanup()
			return nil, nil, err
		}
		links = append(links, link)
	}
	return links, cleanup, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sendmailloop:", err)
	os.Exit(1)
}
