package policy

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)

// walk fails every attempt at the moment it is due and returns the gaps
// (relative to t0) of the next attempts, stopping at expiry or after max.
func walk(p RetryPolicy, deadline time.Time, max int) (offsets []time.Duration, expiredAfter int) {
	at := t0
	for n := 1; n <= max; n++ {
		next, expired := p.Next(n, at, deadline, nil)
		if expired {
			return offsets, n
		}
		offsets = append(offsets, next.Sub(t0))
		at = next
	}
	return offsets, 0
}

func TestScheduleExactSequence(t *testing.T) {
	noJitter := DefaultRetryPolicy()
	noJitter.Jitter = 0
	override := RetryPolicy{Initial: time.Minute, Multiplier: 3, MaxInterval: 30 * time.Minute, MaxLifetime: 3 * time.Hour}
	m := time.Minute
	tests := []struct {
		name string
		p    RetryPolicy
		want []time.Duration // offsets from the first failure at t0
	}{
		// gaps 5m, 10m, 20m, 40m, 1h, 1h, 1h, 1h
		{"default", noJitter, []time.Duration{5 * m, 15 * m, 35 * m, 75 * m, 135 * m, 195 * m, 255 * m, 315 * m}},
		// gaps 1m, 3m, 9m, 27m, 30m, 30m
		{"override 1m x3 cap 30m", override, []time.Duration{1 * m, 4 * m, 13 * m, 40 * m, 70 * m, 100 * m}},
		// multiplier 1: fixed interval
		{"fixed", RetryPolicy{Initial: 10 * m, Multiplier: 1, MaxInterval: time.Hour}, []time.Duration{10 * m, 20 * m, 30 * m}},
		// initial above the cap is capped from the start
		{"initial above cap", RetryPolicy{Initial: 2 * time.Hour, Multiplier: 2, MaxInterval: time.Hour}, []time.Duration{60 * m, 120 * m}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := walk(tt.p, time.Time{}, len(tt.want))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d attempts %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i].Truncate(time.Second) != tt.want[i] || got[i] != tt.want[i] {
					t.Errorf("attempt %d at +%v, want +%v (all: %v)", i+2, got[i], tt.want[i], got)
				}
			}
		})
	}
}

func TestBackoffSequence(t *testing.T) {
	p := DefaultRetryPolicy()
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := p.Backoff(10000); got != time.Hour {
		t.Errorf("Backoff(10000) = %v, want the 1h cap", got)
	}
	if got := p.Backoff(0); got != 5*time.Minute {
		t.Errorf("Backoff(0) = %v, want it treated as 1 (5m)", got)
	}
}

func TestJitterBounds(t *testing.T) {
	p := DefaultRetryPolicy() // ±10%
	tests := []struct {
		name     string
		n        int
		rnd      float64
		min, max time.Duration
	}{
		{"rnd 0 is the lower bound", 1, 0, 270 * time.Second, 270 * time.Second},
		{"rnd near 1 is the upper bound", 1, 0.999999999, 330*time.Second - time.Millisecond, 330 * time.Second},
		{"jitter applies after the cap (lower)", 8, 0, 54 * time.Minute, 54 * time.Minute},
		{"jitter applies after the cap (upper)", 8, 0.999999999, 66*time.Minute - time.Millisecond, 66 * time.Minute},
		{"middle", 2, 0.5, 10*time.Minute - time.Millisecond, 10*time.Minute + time.Millisecond},
	}
	for _, tt := range tests {
		next, expired := p.Next(tt.n, t0, time.Time{}, func() float64 { return tt.rnd })
		gap := next.Sub(t0)
		if expired || gap < tt.min || gap > tt.max {
			t.Errorf("%s: gap %v (expired %v), want in [%v, %v]", tt.name, gap, expired, tt.min, tt.max)
		}
	}
	// With the real random source every gap stays within ±10%.
	for i := 0; i < 1000; i++ {
		next, _ := p.Next(3, t0, time.Time{}, nil)
		if gap := next.Sub(t0); gap < 18*time.Minute || gap > 22*time.Minute {
			t.Fatalf("random jitter gave %v for a 20m gap, outside ±10%%", gap)
		}
	}
}

func TestNextDeadline(t *testing.T) {
	p := DefaultRetryPolicy()
	p.Jitter = 0
	deadline := t0.Add(time.Hour)
	tests := []struct {
		name     string
		n        int
		failedAt time.Time
		want     time.Time
		expired  bool
	}{
		{"well before", 1, t0, t0.Add(5 * time.Minute), false},
		{"clamped to the deadline", 6, t0.Add(30 * time.Minute), deadline, false},
		{"exactly reaching the deadline", 1, deadline.Add(-5 * time.Minute), deadline, false},
		{"failure at the deadline expires", 1, deadline, time.Time{}, true},
		{"failure after the deadline expires", 1, deadline.Add(time.Second), time.Time{}, true},
	}
	for _, tt := range tests {
		got, expired := p.Next(tt.n, tt.failedAt, deadline, nil)
		if !got.Equal(tt.want) || expired != tt.expired {
			t.Errorf("%s: Next = %v, %v; want %v, %v", tt.name, got, expired, tt.want, tt.expired)
		}
	}
}

func TestDefaultScheduleRunsToExpiry(t *testing.T) {
	p := DefaultRetryPolicy()
	p.Jitter = 0
	deadline := Deadline(t0, 0, p)
	offsets, expiredAt := walk(p, deadline, 1000)
	// 5+10+20+40 = 75m, then hourly: 75m + 118h = 119h15m, then clamped to 120h.
	wantAttempts := 4 + 118 + 1
	if len(offsets) != wantAttempts {
		t.Fatalf("got %d retries, want %d", len(offsets), wantAttempts)
	}
	if last := offsets[len(offsets)-1]; last != 120*time.Hour {
		t.Errorf("last retry at +%v, want exactly the deadline +120h", last)
	}
	if prev := offsets[len(offsets)-2]; prev != 119*time.Hour+15*time.Minute {
		t.Errorf("second-to-last retry at +%v, want +119h15m", prev)
	}
	if expiredAt != wantAttempts+1 {
		t.Errorf("expired after attempt %d, want %d (the one made at the deadline)", expiredAt, wantAttempts+1)
	}
}

func TestDeadlineHeldTime(t *testing.T) {
	p := DefaultRetryPolicy()
	tests := []struct {
		held time.Duration
		want time.Time
	}{
		{0, t0.Add(120 * time.Hour)},
		{3 * time.Hour, t0.Add(123 * time.Hour)},
		{-time.Hour, t0.Add(120 * time.Hour)}, // nonsense held time never shortens the lifetime
	}
	for _, tt := range tests {
		if got := Deadline(t0, tt.held, p); !got.Equal(tt.want) {
			t.Errorf("Deadline(held %v) = %v, want %v", tt.held, got, tt.want)
		}
	}
	// A failure just after the plain lifetime retries when the message was held.
	if _, expired := p.Next(50, t0.Add(121*time.Hour), Deadline(t0, 3*time.Hour, p), nil); expired {
		t.Error("held message expired at +121h although held 3h (deadline +123h)")
	}
}

func TestSchedule(t *testing.T) {
	p := DefaultRetryPolicy()
	p.Jitter = 0
	last := &Reply{Code: 450, Enhanced: "4.2.1", Text: "mailbox busy"}
	ds := []Decision{
		{Recipient: "a@example.org", Action: Deliver, Status: "2.0.0"},
		{Recipient: "b@example.org", Action: Retry, Reply: last, Status: "4.2.1", Diagnostic: DiagnosticOf(*last)},
		{Recipient: "c@example.org", Action: Bounce, Status: "5.1.1"},
		{Recipient: "d@example.org", Action: Retry, Status: "4.4.2", Diagnostic: "connection lost"},
	}
	deadline := t0.Add(120 * time.Hour)

	got := Schedule(ds, 2, t0, deadline, p, nil)
	if ds[1].RetryAt != (time.Time{}) {
		t.Error("Schedule changed its input")
	}
	for i, want := range []time.Time{{}, t0.Add(10 * time.Minute), {}, t0.Add(10 * time.Minute)} {
		if !got[i].RetryAt.Equal(want) {
			t.Errorf("%s: RetryAt %v, want %v", got[i].Recipient, got[i].RetryAt, want)
		}
	}
	if got[0].Action != Deliver || got[2].Action != Bounce || got[2].Status != "5.1.1" {
		t.Errorf("non-retry decisions changed: %+v", got)
	}

	expired := Schedule(ds, 40, deadline, deadline, p, nil)
	for _, i := range []int{1, 3} {
		d := expired[i]
		if d.Action != Bounce || d.Status != "4.4.7" || !d.RetryAt.IsZero() {
			t.Errorf("%s at the deadline: %+v, want Bounce 4.4.7", d.Recipient, d)
		}
	}
	if d := expired[1]; d.Reply != last || d.Diagnostic != "smtp; 450 4.2.1 mailbox busy" {
		t.Errorf("expired bounce lost the last reply: %+v", d)
	}
	if d := expired[3]; d.Diagnostic != "connection lost" {
		t.Errorf("expired bounce lost the last diagnostic: %q", d.Diagnostic)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*RetryPolicy)
		key    string // "" = valid
	}{
		{"defaults", func(*RetryPolicy) {}, ""},
		{"no warning", func(p *RetryPolicy) { p.DelayWarning = 0 }, ""},
		{"zero initial", func(p *RetryPolicy) { p.Initial = 0 }, "retry.initial"},
		{"multiplier below 1", func(p *RetryPolicy) { p.Multiplier = 0.5 }, "retry.multiplier"},
		{"zero cap", func(p *RetryPolicy) { p.MaxInterval = 0 }, "retry.max_interval"},
		{"negative jitter", func(p *RetryPolicy) { p.Jitter = -0.1 }, "retry.jitter"},
		{"jitter 1", func(p *RetryPolicy) { p.Jitter = 1 }, "retry.jitter"},
		{"zero lifetime", func(p *RetryPolicy) { p.MaxLifetime = 0 }, "retry.max_lifetime"},
		{"negative warning", func(p *RetryPolicy) { p.DelayWarning = -time.Second }, "retry.delay_warning"},
	}
	for _, tt := range tests {
		p := DefaultRetryPolicy()
		tt.change(&p)
		err := p.Validate()
		switch {
		case tt.key == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tt.name, err)
		case tt.key != "" && (err == nil || !strings.Contains(err.Error(), tt.key)):
			t.Errorf("%s: error %v, want one naming %s", tt.name, err, tt.key)
		}
	}
}
