package delivery

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/mx/dnstest"
)

// BenchmarkMXRoute drains the same pre-filled queue (5,000 messages of
// 4 KiB, one recipient) into one in-process go-smtp sink twice in each
// iteration: through a fixed-host route, then through an MX route whose
// exchanger is found by an in-process DNS server. It reports both rates
// and their ratio (same run, same machine load).
//
//	go test -run '^$' -bench MXRoute -benchtime 3x ./delivery/
func BenchmarkMXRoute(b *testing.B) {
	const messages = 5000
	body := benchBody(4 << 10)
	run := func(route func(port int, dnsAddr string) Route) time.Duration {
		b.StopTimer()
		s, port := startSink(b, false)
		srv := dnstest.Start(b)
		srv.Add(b, "sink.test. 300 IN MX 10 mx.sink.test.", "mx.sink.test. 300 IN A 127.0.0.1")
		h := newHarness(b, []Route{route(port, srv.Addr)}, func(o *Options) {
			o.Workers = DefaultWorkers
			o.PerRouteConnections = DefaultPerRouteConnections
			o.MessagesPerConnection = DefaultMessagesPerConnection
			o.Logger = zerolog.Nop()
		})
		fill(b, h.store, messages, 1, body)
		b.StartTimer()
		start := time.Now()
		h.start()
		for s.delivered() < messages {
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		if err := h.stop(); err != nil {
			b.Fatal(err)
		}
		return took
	}
	var fixed, viaMX time.Duration
	for range b.N {
		fixed += run(func(port int, _ string) Route { return testRoute("fixed", port) })
		viaMX += run(func(port int, dnsAddr string) Route {
			r := testRoute("mx", port)
			r.Settings.Host = ""
			r.MX = &MXRoute{Resolver: dnsAddr}
			return r
		})
	}
	b.ReportMetric(float64(messages*b.N)/fixed.Seconds(), "fixed-msg/s")
	b.ReportMetric(float64(messages*b.N)/viaMX.Seconds(), "mx-msg/s")
	b.ReportMetric(fixed.Seconds()/viaMX.Seconds(), "mx/fixed")
}
