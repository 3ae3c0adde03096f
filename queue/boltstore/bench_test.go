package boltstore

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Enqueue throughput is bounded by fsyncs; group commit makes many
// submitters share one. Compare BenchmarkEnqueue/submitters-64 with
// BenchmarkFsync, the disk's raw rate of small write+fsync.

func BenchmarkFsync(b *testing.B) {
	// fsync also flushes the inode (mtime); bbolt commits use fdatasync,
	// so both are shown.
	syncs := map[string]func(f *os.File) error{
		"fsync":     (*os.File).Sync,
		"fdatasync": func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) },
	}
	for _, name := range []string{"fsync", "fdatasync"} {
		b.Run(name, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "fsync"), os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			page := make([]byte, 4096)
			for i := 0; b.Loop(); i++ {
				if _, err := f.WriteAt(page, int64(i%16)*4096); err != nil {
					b.Fatal(err)
				}
				if err := syncs[name](f); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "syncs/s")
		})
	}
}

func BenchmarkEnqueue(b *testing.B) {
	for _, submitters := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("submitters-%d", submitters), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "queue.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
			env := envelope("bench@example.com", "rcpt@example.org")
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range submitters {
				wg.Go(func() {
					for range work {
						if _, err := s.Enqueue(env, bytes.NewReader(body)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}

// BenchmarkLease measures one Lease of one message plus its RecordOutcome
// (retry an hour later, so the message goes back into the index) with
// 100k messages queued.
func BenchmarkLease(b *testing.B) {
	const queued = 100_000
	clock := newFakeClock()
	s, err := Open(filepath.Join(b.TempDir(), "queue.db"), Options{Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("x"), 1024)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			for range queued / 100 {
				if _, err := s.Enqueue(envelope("bench@example.com", "rcpt@example.org"), bytes.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		now := clock.Advance(time.Microsecond)
		ls, err := s.Lease(now, 1)
		if err != nil || len(ls) != 1 {
			b.Fatalf("Lease = %d, %v", len(ls), err)
		}
		l := ls[0]
		err = s.RecordOutcome(l, Attempt{Time: now}, []Outcome{{Recipient: l.Recipients[0], Decision: DecideRetry, RetryAt: now.Add(time.Hour)}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lease+outcome/s")
}

// bigQueueN is the queue length of BenchmarkBigQueue
// (go test ./queue -run '^$' -bench BigQueue -bigqueue.n 300000).
var bigQueueN = flag.Int("bigqueue.n", 100000, "messages in BenchmarkBigQueue's queue")

// BenchmarkBigQueue times, on a queue of -bigqueue.n deferred 4 KiB
// messages: Open after a clean stop, Open that has to rebuild the indexes,
// Flush, and HoldEach/ReleaseEach of 10,000 ids (issue 18). Each operation
// runs once per b.N on the same file; profile one with -cpuprofile and
// -bench BigQueue/NAME.
func BenchmarkBigQueue(b *testing.B) {
	path := filepath.Join(b.TempDir(), "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := fillDeferredSized(s, *bigQueueN, 4096, time.Now().Add(100*time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d in %v", *bigQueueN, time.Since(start))
	s.Close()
	ids := make([]ID, min(10000, *bigQueueN))
	for i := range ids {
		ids[i] = formatID(uint64(i + 1))
	}
	run := func(name string, before func(), op func(s *Store) error) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if before != nil {
					before()
				}
				s, err := Open(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := op(s); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
		})
	}
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
	b.Run("OpenRebuild", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
			if err != nil {
				b.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaIndexVersion) }); err != nil {
				b.Fatal(err)
			}
			db.Close()
			b.StartTimer()
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
	run("Flush", nil, func(s *Store) error {
		// Undo the previous round's flush first, untimed.
		_, err := s.Flush()
		return err
	})
	// List reads what `mailqctl list` shows of every message; Stats what
	// `mailqctl stats` shows (issue 13: ≤ 1 s and ≤ 50 ms).
	run("List", nil, func(s *Store) error {
		n := 0
		err := s.List(Filter{}, func(*Message) error { n++; return nil })
		if err == nil && n != *bigQueueN {
			err = fmt.Errorf("List gave %d messages, want %d", n, *bigQueueN)
		}
		return err
	})
	run("ListJSON", nil, func(s *Store) error {
		n := 0
		err := s.ListJSON(Filter{}, func([]byte) error { n++; return nil })
		if err == nil && n != *bigQueueN {
			err = fmt.Errorf("ListJSON gave %d messages, want %d", n, *bigQueueN)
		}
		return err
	})
	run("Stats", nil, func(s *Store) error {
		st, err := s.Stats()
		if err == nil && st.Deferred != *bigQueueN {
			err = fmt.Errorf("Stats = %+v, want %d deferred", st, *bigQueueN)
		}
		return err
	})
	run("Hold10k", nil, func(s *Store) error { return errors.Join(s.HoldEach(ids)...) })
	run("Release10k", nil, func(s *Store) error { return errors.Join(s.ReleaseEach(ids)...) })
}
