package delivery

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/config"
)

// TestOptionsFromDefaultConfig: the embedded defaults give an engine with
// the documented [delivery] and [retry] values and one "*" route.
func TestOptionsFromDefaultConfig(t *testing.T) {
	c := config.Default()
	h := newHarness(t, nil, nil)
	o := OptionsFromConfig(c, h.store, zerolog.Nop())
	if o.Workers != 32 || o.PerRouteConnections != 8 || o.MessagesPerConnection != 100 || o.ShutdownGrace != 30*time.Second {
		t.Errorf("delivery options %+v, want 32/8/100 and 30s grace", o)
	}
	if len(o.Routes) != 1 || o.Routes[0].Settings.Domains[0] != "*" {
		t.Fatalf("routes %+v, want the one default * route", o.Routes)
	}
	r := o.Routes[0].Retry
	if r.Initial != 5*time.Minute || r.Multiplier != 2 || r.MaxInterval != time.Hour || r.MaxLifetime != 120*time.Hour || r.DelayWarning != 4*time.Hour {
		t.Errorf("route retry %+v, want the [retry] defaults", r)
	}
	if _, err := New(o); err != nil {
		t.Errorf("New with the default configuration: %v", err)
	}
}
