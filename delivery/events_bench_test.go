package delivery

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/events"
	"mailq/events/eventstest"
	"mailq/events/webhook"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// BenchmarkEndToEndWebhooks is BenchmarkEndToEnd (5,000 messages of 4 KiB,
// one recipient each, default delivery settings) with webhooks off (no
// journal), journal-only (events stored with each change, nobody posts
// them: the cost of the event log) and on (a signed webhook to a local
// HTTP receiver as well, running from before the queue is filled). It reports the
// delivery rate (msg/s, until the sink has every message) and, when on,
// the rate at which the receiver got the 10,000 events (events/s, until
// it had all). Compare the two msg/s figures of one run.
//
//	go test -run '^$' -bench EndToEndWebhooks -benchtime 3x ./delivery/
func BenchmarkEndToEndWebhooks(b *testing.B) {
	for _, mode := range []string{"off", "journal-only", "on"} {
		journal, on := mode != "off", mode == "on"
		b.Run("webhooks="+mode, func(b *testing.B) {
			const messages = 5000
			body := benchBody(4 << 10)
			var elapsed, eventsElapsed time.Duration
			for range b.N {
				b.StopTimer()
				s, port := startSink(b, false)
				var qopts queue.Options
				if journal {
					qopts.Journal, qopts.MessageIDOf = events.Journal, events.MessageIDOf
				}
				store, err := boltstore.Open(filepath.Join(b.TempDir(), "queue.db"), qopts)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var recv *eventstest.Receiver
				posterDone := make(chan struct{})
				if on {
					recv = eventstest.NewHTTP(b, []byte("bench-secret"))
					p, err := webhook.NewPoster(webhook.Options{Store: store, Logger: zerolog.Nop(),
						Webhooks: []webhook.Endpoint{{Name: "bench", URL: recv.URL, Secret: recv.Secret}}})
					if err != nil {
						b.Fatal(err)
					}
					go func() { p.Run(ctx); close(posterDone) }()
					for !p.Status()[0].Running {
						time.Sleep(time.Millisecond)
					}
				} else {
					close(posterDone)
				}
				fill(b, store, messages, 1, body)
				e, err := New(Options{Store: store, Routes: []Route{testRoute("sink", port)}, Logger: zerolog.Nop(), ShutdownGrace: 5 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				runDone := make(chan error, 1)
				go func() { runDone <- e.Run(ctx) }()
				for s.delivered() < messages {
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
				b.StopTimer()
				if on {
					for recv.Count() < 2*messages {
						time.Sleep(time.Millisecond)
					}
					eventsElapsed += time.Since(start)
				}
				cancel()
				<-runDone
				<-posterDone
				store.Close()
			}
			b.ReportMetric(float64(messages*b.N)/elapsed.Seconds(), "msg/s")
			if on {
				b.ReportMetric(float64(2*messages*b.N)/eventsElapsed.Seconds(), "events/s")
			}
		})
	}
}
