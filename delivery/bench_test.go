package delivery

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/queue"
)

// BenchmarkEndToEnd drains a pre-filled queue (10,000 messages of 4 KiB)
// into an in-process go-smtp sink with the default delivery settings
// (32 workers, 8 connections per route, 100 messages per connection) and
// reports messages per second. Filling the queue is not timed.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./delivery/
func BenchmarkEndToEnd(b *testing.B) {
	for _, rcpts := range []int{1, 10} {
		b.Run(fmt.Sprintf("rcpts=%d", rcpts), func(b *testing.B) {
			const messages = 10000
			body := benchBody(4 << 10)
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				s, port := startSink(b, false)
				h := newHarness(b, []Route{testRoute("sink", port)}, func(o *Options) {
					o.Workers = DefaultWorkers
					o.PerRouteConnections = DefaultPerRouteConnections
					o.MessagesPerConnection = DefaultMessagesPerConnection
					o.Logger = zerolog.Nop()
				})
				fill(b, h.store, messages, rcpts, body)
				b.StartTimer()
				start := time.Now()
				h.start()
				for s.delivered() < messages {
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
				b.StopTimer()
				if err := h.stop(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(messages*b.N)/elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(messages*rcpts*b.N)/elapsed.Seconds(), "rcpt/s")
		})
	}
}

func benchBody(size int) string {
	var sb strings.Builder
	sb.WriteString("From: <sender@client.test>\r\nTo: <a@sink.test>\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("x", 76) + "\r\n"
	for sb.Len() < size {
		sb.WriteString(line)
	}
	return sb.String()
}

// fill enqueues n messages with rcpts recipients each, 32 at a time so the
// queue group-commits.
func fill(b testing.TB, store queue.Store, n, rcpts int, body string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			env := queue.Envelope{Sender: "sender@client.test"}
			for r := range rcpts {
				env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: fmt.Sprintf("u%d-%d@sink.test", i, r)})
			}
			if _, err := store.Enqueue(env, strings.NewReader(body)); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("fill: %v", firstErr)
	}
}
