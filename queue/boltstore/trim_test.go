package boltstore

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rssFileKiB is this process's resident file-backed memory (RssFile): for
// the store, the pages of queue.db its mapping holds.
func rssFileKiB(t *testing.T) int64 { return procStatusKiB(t, "RssFile:") }

// procStatusKiB is a field of /proc/self/status, in KiB.
func procStatusKiB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestBigWalksLeaveFileUnmapped is issue 13's memory finding: what Open
// and List touch of the file stayed in the resident set, so the daemon's
// RSS grew with the queue (170 MiB after Open, 150 MiB more after one list
// at 100k, with a 3 MiB heap). After Open and after a List of every
// message, the mapping holds no more of the file than a few MiB, and
// neither walk raised the peak much above that.
func TestBigWalksLeaveFileUnmapped(t *testing.T) {
	const n = 40000
	path, s := openFilled(t, n)
	// An unclean stop: the next Open checks the indexes, walking them.
	s.Close()
	os.Remove(cleanPath(path))

	const limitKiB = 16 << 10
	base := rssFileKiB(t)
	// Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS,
	// so the peak below is that of Open and List alone.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS: %v", err)
	}
	rssBase := procStatusKiB(t, "VmRSS:")
	s, err := Open(path, Options{})
	if err != nil {
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
	// The peak too: the walks trim as they go.
	if peak := procStatusKiB(t, "VmHWM:") - rssBase; peak > 2*limitKiB {
		t.Errorf("Open and List of %d messages raised the peak RSS by %d KiB; want at most %d", n, peak, 2*limitKiB)
	}
}

// TestRebuildLeavesFileUnmapped is the rebuild's part of issue 13's memory
// finding, found at 1M messages: a rebuild of the indexes (a store from an
// older mailq, or indexes a check after a crash found wrong) first deleted
// the old index buckets in one transaction, and bbolt reads every page of
// a bucket it deletes, so the daemon's peak RSS reached 2.1 GiB on an
// 8.3 GB file (its steady state: 18 MiB). The rebuild must keep the file
// mapping bounded throughout, whatever the queue's length.
func TestRebuildLeavesFileUnmapped(t *testing.T) {
	const n = 40000
	path, s := openFilled(t, n)
	if err := s.write(0, func(tx *bolt.Tx, _ *delta) error { return tx.Bucket(bucketMeta).Delete(metaIndexVersion) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	const limitKiB = 16 << 10
	base := rssFileKiB(t)
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS: %v", err)
	}
	rssBase := procStatusKiB(t, "VmRSS:")
	rebuilt := false
	s, err := Open(path, Options{OnRebuild: func(p RebuildProgress) { rebuilt = rebuilt || p.Done }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !rebuilt {
		t.Fatal("Open did not rebuild the indexes")
	}
	if st, _ := s.Stats(); st.Deferred != n {
		t.Fatalf("after the rebuild %d deferred, want %d", st.Deferred, n)
	}
	if grew := rssFileKiB(t) - base; grew > limitKiB {
		t.Errorf("after a rebuild of %d messages the file mapping holds %d KiB; want at most %d", n, grew, limitKiB)
	}
	// The peak: the file pages a rebuild touches are trimmed as it goes,
	// and its heap is bounded by a batch.
	peak := procStatusKiB(t, "VmHWM:") - rssBase
	t.Logf("a rebuild of %d messages raised the peak RSS by %d KiB", n, peak)
	if peak > 4*limitKiB {
		t.Errorf("a rebuild of %d messages raised the peak RSS by %d KiB; want at most %d", n, peak, 4*limitKiB)
	}
}

// openFilled opens a new store holding n deferred 4 KiB messages.
func openFilled(t *testing.T, n int) (string, *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fillDeferredSized(s, n, 4096, time.Now().Add(100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return path, s
}
