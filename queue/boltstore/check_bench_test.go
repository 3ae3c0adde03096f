package boltstore

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// generateStore builds a store of n messages (1 KiB bodies, one
// recipient; every 10th done, every 7th deferred) in transactions of
// 10,000, much faster than n Enqueues, with the same records and indexes.
func generateStore(tb testing.TB, path string, n int) {
	tb.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	body := []byte(strings.Repeat("0123456789abcdef", 64))
	now := time.Now()
	for done := 0; done < n; {
		batch := min(10000, n-done)
		err := s.write(int64(batch*len(body)), func(tx *bolt.Tx, d *delta) error {
			msgs, bodies, live := tx.Bucket(bucketMsgs), tx.Bucket(bucketBodies), tx.Bucket(bucketLive)
			for i := range batch {
				seq, _ := msgs.NextSequence()
				id := formatID(seq)
				r := &record{Message: Message{ID: id, Sender: "gen@example.test", Size: int64(len(body)), Arrival: now, Source: "smtp",
					Recipients: []Recipient{{Address: fmt.Sprintf("r%d@example.test", done+i), State: Pending, NextAttempt: now}}}, Chunks: 1}
				switch {
				case (done+i)%10 == 0:
					r.Recipients[0].State, r.Recipients[0].Attempts, r.Finished = Delivered, 1, now
				case (done+i)%7 == 0:
					r.Recipients[0].State, r.Recipients[0].Attempts, r.Recipients[0].NextAttempt = Deferred, 1, now.Add(time.Hour)
				}
				if err := bodies.Put(chunkKey(id, 0), body); err != nil {
					return err
				}
				var arrival [8]byte
				binary.BigEndian.PutUint64(arrival[:], uint64(now.UnixNano()))
				if err := live.Put([]byte(id), arrival[:]); err != nil {
					return err
				}
				if err := save(tx, r, d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		done += batch
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckFile times `mailq check-store` (CheckFile) on stores of
// 100k and 1M messages, against Open on the same file (the daemon's start,
// which also reads every record) as the baseline of the same run:
//
//	go test ./queue -run '^$' -bench CheckFile -benchtime 1x -timeout 1h
func BenchmarkCheckFile(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("messages-%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "queue.db")
			generateStore(b, path, n)
			start := time.Now()
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			openTime := time.Since(start)
			s.Close()
			// The walk Open does first (precheck), alone: its share of a start.
			start = time.Now()
			if problems, _, err := walkFile(path, 1); err != nil || len(problems) > 0 {
				b.Fatalf("walk: %v %v", err, problems)
			}
			walkTime := time.Since(start)
			b.ResetTimer()
			var rep *CheckReport
			cpu0 := cpuTime()
			for b.Loop() {
				if rep, err = CheckFile(path); err != nil || !rep.OK() {
					b.Fatalf("CheckFile: %v %v", err, rep.Problems[:min(len(rep.Problems), 5)])
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			if rep.Messages != n {
				b.Fatalf("checked %d messages, want %d", rep.Messages, n)
			}
			b.ReportMetric(float64(rep.Elapsed.Milliseconds()), "check-ms")
			b.ReportMetric(float64(openTime.Milliseconds()), "open-ms")
			b.ReportMetric(float64(walkTime.Milliseconds()), "open-walk-ms")
			b.ReportMetric(float64(rep.Elapsed)/float64(openTime), "check/open")
			b.ReportMetric(float64(rep.Pages), "pages")
			// On a loaded machine wall time mostly waits for a CPU; CPU time
			// is what the check itself costs.
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "check-cpu-ms")
		})
	}
}
