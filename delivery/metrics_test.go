package delivery

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"mailq/metrics"
)

// TestMetricsCountRecipients: deliveries, deferrals and bounces are counted
// per recipient and route, the notice per action, and no connection stays
// counted as open after shutdown.
func TestMetricsCountRecipients(t *testing.T) {
	srv := newFakeServer(t)
	const route = "metrics-test"
	h := newHarness(t, []Route{testRoute(route, srv.port(), "fake.test"), testRoute("notices", srv.port(), "client.test")}, nil)
	before := map[string]float64{
		"delivered": testutil.ToFloat64(metrics.Deliveries.WithLabelValues(route)),
		"deferred":  testutil.ToFloat64(metrics.Deferrals.WithLabelValues(route)),
		"bounced":   testutil.ToFloat64(metrics.Bounces.WithLabelValues(route)),
		"dsn":       testutil.ToFloat64(metrics.DSNSent.WithLabelValues("failed")),
		"class5":    testutil.ToFloat64(metrics.StatusClass.WithLabelValues(route, "bounce", "5")),
	}
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test", "ok-b@fake.test", "r450-c@fake.test", "r550-d@fake.test")
	h.start()
	h.settled(t, id, 1)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{
		"delivered": testutil.ToFloat64(metrics.Deliveries.WithLabelValues(route)) - before["delivered"],
		"deferred":  testutil.ToFloat64(metrics.Deferrals.WithLabelValues(route)) - before["deferred"],
		"bounced":   testutil.ToFloat64(metrics.Bounces.WithLabelValues(route)) - before["bounced"],
		"dsn":       testutil.ToFloat64(metrics.DSNSent.WithLabelValues("failed")) - before["dsn"],
		"class5":    testutil.ToFloat64(metrics.StatusClass.WithLabelValues(route, "bounce", "5")) - before["class5"],
	}
	want := map[string]float64{"delivered": 2, "deferred": 1, "bounced": 1, "dsn": 1, "class5": 1}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: +%v, want +%v", k, got[k], w)
		}
	}
	if open := testutil.ToFloat64(metrics.ConnectionsOpen.WithLabelValues(route)); open != 0 {
		t.Errorf("connections open after shutdown: %v", open)
	}
}
