package webhook_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mailq/events/eventstest"
	"mailq/events/webhook"
	"mailq/queue"
)

// BenchmarkPosterToLocalReceiver posts 20,000 stored events (2,000
// messages of 10 recipients: their queued events) to a local HTTP receiver
// that verifies every signature, with 1, 4 (the default) and 16 workers,
// and reports acknowledged events per second.
//
//	go test -run '^$' -bench PosterToLocalReceiver -benchtime 3x ./events/webhook/
func BenchmarkPosterToLocalReceiver(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			const msgs, rcpts = 2000, 10
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				s := openStore(b)
				r := eventstest.NewHTTP(b, []byte("bench"))
				hooks := []webhook.Endpoint{{Name: "bench", URL: r.URL, Secret: r.Secret, Workers: workers}}
				// Start at the beginning of the log: a first run stores its cursor at 0.
				if err := s.SetEventCursor("webhook:bench", 0); err != nil {
					b.Fatal(err)
				}
				for i := range msgs {
					env := queue.Envelope{Sender: "app@example.com"}
					for j := range rcpts {
						env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: fmt.Sprintf("u%d-%d@example.org", i, j)})
					}
					if _, err := s.Enqueue(env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				_, stop := runPoster(b, webhook.Options{Store: s, Webhooks: hooks})
				for r.Count() < msgs*rcpts {
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
				b.StopTimer()
				stop()
			}
			b.ReportMetric(float64(msgs*rcpts*b.N)/elapsed.Seconds(), "events/s")
		})
	}
}
