package queuetest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MappedKiB is how much of the file at path the mappings of process pid
// hold resident: the sum of their Rss: lines in /proc/PID/smaps. A store
// reads its file through such a mapping (bbolt), and what it touches
// there counts in the process's resident set (issue 13).
func MappedKiB(pid int, path string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	inFile := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 0:
		case strings.HasSuffix(fields[0], ":"): // "Rss:   123 kB" and the like
			if inFile && fields[0] == "Rss:" && len(fields) >= 2 {
				kb, err := strconv.ParseInt(fields[1], 10, 64)
				if err != nil {
					return 0, err
				}
				total += kb
			}
		default: // a mapping's header: "start-end perms offset dev inode [path]"
			inFile = len(fields) >= 6 && fields[5] == path
		}
	}
	return total, sc.Err()
}
