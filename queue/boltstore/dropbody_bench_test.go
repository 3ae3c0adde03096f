package boltstore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDeliveredFileSize delivers three rounds of 5,000 messages of
// 4 KiB and reports queue.db's size after each, and the body bytes still
// stored: with bodies kept until purge (7 days) the file grows by every
// round; with bodies dropped at delivery, later rounds reuse the pages the
// earlier ones freed (issue 13).
//
//	go test ./queue/boltstore -run '^$' -bench DeliveredFileSize -benchtime 1x
func BenchmarkDeliveredFileSize(b *testing.B) {
	const n, rounds = 5000, 3
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 64)
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "queue.db")
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for round := 1; round <= rounds; round++ {
			for range n {
				if _, err := s.Enqueue(Envelope{Sender: "a@example.com", Source: "smtp",
					Recipients: []RecipientSpec{{Address: "b@example.org"}}}, bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
			for {
				ls, err := s.Lease(time.Now(), 500)
				if err != nil {
					b.Fatal(err)
				}
				if len(ls) == 0 {
					break
				}
				for _, l := range ls {
					if err := s.RecordOutcome(l, Attempt{Time: time.Now()}, []Outcome{{Recipient: l.Recipients[0], Decision: DecideDelivered}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size())/(1<<20), "MB-after-round-"+string(rune('0'+round)))
		}
		s.Close()
		rep, err := CheckFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.BodyBytes)/(1<<20), "MB-of-bodies-kept")
	}
}
