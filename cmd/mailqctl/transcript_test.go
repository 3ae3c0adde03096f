package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"mailq/control"
	"mailq/queue"
)

// TestShowTranscript: show prints the attempt's proxy, cipher and
// connection error, and with --transcript its transcript lines.
func TestShowTranscript(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := &control.ShowReply{Message: &queue.Message{ID: "0000000000000001", Status: queue.StatusDeferred,
		Recipients: []queue.Recipient{{Address: "b@example.org", State: queue.Deferred}},
		Attempts: []queue.Attempt{{Time: now, Route: "relay", Remote: "192.0.2.1:587", Proxy: "socks5 127.0.0.1:1080",
			TLS: "TLS1.3", Cipher: "TLS_AES_128_GCM_SHA256", Error: "authentication with relay failed",
			Recipients: []string{"b@example.org"},
			Transcript: []string{"12:00:00.000 C: EHLO mq.example.test", "12:00:00.001 C: AUTH PLAIN <redacted>"}}}}}
	var plain, full bytes.Buffer
	printMessage(&plain, m, now)
	printMessage(&full, m, now, true)
	for _, want := range []string{"via socks5 127.0.0.1:1080", "cipher TLS_AES_128_GCM_SHA256", "error: authentication with relay failed"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, plain.String())
		}
	}
	if strings.Contains(plain.String(), "EHLO") {
		t.Errorf("show without --transcript printed the transcript:\n%s", plain.String())
	}
	if !strings.Contains(full.String(), "C: EHLO mq.example.test") || !strings.Contains(full.String(), "AUTH PLAIN <redacted>") {
		t.Errorf("show --transcript lacks the transcript:\n%s", full.String())
	}
}
