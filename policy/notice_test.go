package policy

import (
	"testing"
	"time"
)

func TestEffectiveNotify(t *testing.T) {
	tests := []struct{ own, route, want string }{
		{"", "", "FAILURE,DELAY"},
		{"", "failure", "FAILURE"},
		{"never", "FAILURE", "NEVER"},
		{"success, failure", "", "SUCCESS,FAILURE"},
		{" ", " , ", "FAILURE,DELAY"},
	}
	for _, tt := range tests {
		if got := EffectiveNotify(tt.own, tt.route); got != tt.want {
			t.Errorf("EffectiveNotify(%q, %q) = %q, want %q", tt.own, tt.route, got, tt.want)
		}
	}
}

func TestWantsNotice(t *testing.T) {
	tests := []struct {
		name   string
		sender string
		notify string
		kind   NoticeKind
		want   bool
	}{
		{"null sender gets no bounce", "", "FAILURE,DELAY", NoticeFailure, false},
		{"<> gets no warning", "<>", "FAILURE,DELAY", NoticeDelay, false},
		{"null sender gets no success", "", "SUCCESS", NoticeSuccess, false},
		{"NEVER suppresses failure", "a@example.com", "NEVER", NoticeFailure, false},
		{"NEVER suppresses delay", "a@example.com", "never", NoticeDelay, false},
		{"NEVER wins even when combined (RFC 3461 forbids it)", "a@example.com", "FAILURE,NEVER", NoticeFailure, false},
		{"FAILURE only: failure", "a@example.com", "FAILURE", NoticeFailure, true},
		{"FAILURE only: no delay", "a@example.com", "FAILURE", NoticeDelay, false},
		{"DELAY excluded", "a@example.com", "SUCCESS,FAILURE", NoticeDelay, false},
		{"DELAY only: no failure", "a@example.com", "DELAY", NoticeFailure, false},
		{"default: failure", "a@example.com", "", NoticeFailure, true},
		{"default: delay", "a@example.com", "", NoticeDelay, true},
		{"default: no success", "a@example.com", "", NoticeSuccess, false},
		{"SUCCESS requested", "a@example.com", "SUCCESS", NoticeSuccess, true},
		{"case and spaces", "a@example.com", " success , delay ", NoticeSuccess, true},
	}
	for _, tt := range tests {
		if got := WantsNotice(tt.sender, tt.notify, tt.kind); got != tt.want {
			t.Errorf("%s: WantsNotice(%q, %q, %s) = %v, want %v", tt.name, tt.sender, tt.notify, tt.kind, got, tt.want)
		}
	}
}

func TestSuccessNoticeDue(t *testing.T) {
	if !SuccessNoticeDue("a@example.com", "SUCCESS", false) {
		t.Error("SUCCESS to a next hop without DSN: want a relayed notice")
	}
	if SuccessNoticeDue("a@example.com", "SUCCESS", true) {
		t.Error("SUCCESS to a next hop that took the DSN request: want no notice from us")
	}
	if SuccessNoticeDue("a@example.com", "FAILURE", false) {
		t.Error("no SUCCESS requested: want no notice")
	}
}

func TestDelayWarningDue(t *testing.T) {
	p := DefaultRetryPolicy() // warn after 4h, lifetime 120h
	off := DefaultRetryPolicy()
	off.DelayWarning = 0
	tests := []struct {
		name   string
		held   time.Duration
		now    time.Duration // since arrival
		p      RetryPolicy
		warned bool
		want   bool
	}{
		{"before 4h", 0, 4*time.Hour - time.Second, p, false, false},
		{"at 4h", 0, 4 * time.Hour, p, false, true},
		{"later", 0, 10 * time.Hour, p, false, true},
		{"already warned", 0, 10 * time.Hour, p, true, false},
		{"held time does not count", 2 * time.Hour, 5 * time.Hour, p, false, false},
		{"held time then due", 2 * time.Hour, 6 * time.Hour, p, false, true},
		{"disabled", 0, 10 * time.Hour, off, false, false},
		{"at the deadline it bounces instead", 0, 120 * time.Hour, p, false, false},
	}
	for _, tt := range tests {
		if got := DelayWarningDue(t0, tt.held, t0.Add(tt.now), tt.p, tt.warned); got != tt.want {
			t.Errorf("%s: DelayWarningDue = %v, want %v", tt.name, got, tt.want)
		}
	}
}
