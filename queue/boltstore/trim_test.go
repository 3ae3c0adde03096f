package boltstore

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssFileKiB is this process's resident file-backed memory (RssFile): for
// the store, the pages of queue.db its mapping holds.
func rssFileKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssFile:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestBigWalksLeaveFileUnmapped is issue 13's memory finding: what Open
// and List touch of the file stayed in the resident set, so the daemon's
// RSS grew with the queue (170 MiB after Open, 150 MiB more after one list
// at 100k, with a 3 MiB heap). After Open and after a List of every
// message, the mapping holds no more of the file than a few MiB.
func TestBigWalksLeaveFileUnmapped(t *testing.T) {
	const n = 40000
	path := filepath.Join(t.TempDir(), "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fillDeferredSized(s, n, 4096, time.Now().Add(100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// An unclean stop: the next Open checks the indexes, walking them.
	s.Close()
	os.Remove(cleanPath(path))

	const limitKiB = 16 << 10
	base := rssFileKiB(t)
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if grew := rssFileKiB(t) - base; grew > limitKiB {
		t.Errorf("after Open of %d messages the file mapping holds %d KiB; want at most %d", n, grew, limitKiB)
	}
	got := 0
	if err := s.List(Filter{}, func(*Message) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("List gave %d messages, want %d", got, n)
	}
	if grew := rssFileKiB(t) - base; grew > limitKiB {
		t.Errorf("after a List of %d messages the file mapping holds %d KiB; want at most %d", n, grew, limitKiB)
	}
}
