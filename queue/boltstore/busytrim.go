package boltstore

// While mail flows through, every page a commit writes is read again
// through bbolt's mapping soon after: the next commit reads the b-tree
// leaves it rewrote, delivery reads the bodies intake wrote, and the
// kernel maps a whole page-cache folio (or 64 KiB around the page) at
// each fault. Without a trim the mapping's resident set grew with the
// file until all of it was resident: 60 MiB of queue.db in a daemon with
// a 13 MiB heap after 15,000 messages, 240 MiB in the 20,000-message run
// of bench/compare (issue 13). So after each commit the writer looks at
// the process's resident file-backed memory and, once it has grown by
// trimGrowth since the last trim, trims the mapping (trim.go) before it
// takes the next batch. That keeps the resident part of the file to what
// the last moments touched, however large the file and whatever reads it.

import (
	"os"
	"strconv"
	"strings"
)

// trimGrowth is how much resident file-backed memory may accumulate
// before a busy store trims its mapping. A trim costs one madvise and
// the minor faults that map the pages in use again, and every commit
// writes its pages to new places in the file (copy on write), which the
// next commits read: the resident set refills at the rate pages churn.
// At 4 MiB a 100 KiB-message run trimmed every 5-6 messages and mailq
// spent 1.8 ms of CPU per message; at 16 MiB, every 18, and 1.37 ms
// (medians of 4 alternating runs of 1,000 messages, issue 13). The
// daemon's peak RSS in a 20,000 × 4 KiB run rose from 38 to 51 MiB.
const trimGrowth = 16 << 20

// busyTrimmer decides when the mapping has grown enough to trim again.
// Only the writer goroutine uses it.
type busyTrimmer struct {
	base  int64    // resident file-backed bytes just after the last trim
	statm *os.File // /proc/self/statm, opened at the first look, read with pread
	buf   [128]byte
}

// residentFile is the process's resident file-backed memory in bytes:
// the third field of /proc/self/statm ("shared": RssFile+RssShmem, in
// pages). It is the store's mapping plus the program's own text, which
// varies little. ok is false where there is no such file (no trims then).
// The file stays open and each look is one pread at offset 0 (the kernel
// writes the figures afresh for a read from the start): os.ReadFile was
// six system calls after every commit.
func (t *busyTrimmer) residentFile() (_ int64, ok bool) {
	if t.statm == nil {
		f, err := os.Open("/proc/self/statm")
		if err != nil {
			return 0, false
		}
		t.statm = f
	}
	n, err := t.statm.ReadAt(t.buf[:], 0)
	if n == 0 && err != nil {
		return 0, false
	}
	return parseStatmShared(t.buf[:n])
}

// close closes the statm file; the writer calls it as it ends.
func (t *busyTrimmer) close() {
	if t.statm != nil {
		t.statm.Close()
		t.statm = nil
	}
}

// parseStatmShared reads the third field of statm's text, in bytes.
func parseStatmShared(b []byte) (_ int64, ok bool) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// trimIfGrown trims the mapping when the resident file-backed memory has
// grown by trimGrowth since the last trim. The writer calls it after each
// commit (reading statm is one system call, next to a commit's fsync),
// where it cannot wait for a remap (only a commit remaps): the madvise of
// a few MiB of page table entries takes well under a millisecond, and
// doing it here rather than in another goroutine keeps the bound even on
// a loaded machine.
func (s *Store) trimIfGrown() {
	t := &s.trimmer
	r, ok := t.residentFile()
	if !ok || r-t.base < trimGrowth {
		return
	}
	s.trim()
	if r, ok := t.residentFile(); ok {
		t.base = r
	}
}
