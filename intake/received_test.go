package intake

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestReceived(t *testing.T) {
	now := time.Date(2026, 11, 26, 5, 4, 3, 0, time.FixedZone("", 3600))
	tests := []struct{ from, by, with, id, want string }{
		{"client.example ([127.0.0.1])", "mail.example.com", "ESMTPS", "abc123",
			"Received: from client.example ([127.0.0.1])\r\n\tby mail.example.com with ESMTPS id abc123;\r\n\tThu, 26 Nov 2026 05:04:03 +0100\r\n"},
		{"", "mail.example.com", "local", "",
			"Received: by mail.example.com with local;\r\n\tThu, 26 Nov 2026 05:04:03 +0100\r\n"},
		{"evil\r\nX-Injected: 1", "h", "ESMTP", "i",
			"Received: from evil??X-Injected: 1\r\n\tby h with ESMTP id i;\r\n\tThu, 26 Nov 2026 05:04:03 +0100\r\n"},
	}
	for _, tt := range tests {
		got := Received(tt.from, tt.by, tt.with, tt.id, now)
		if got != tt.want {
			t.Errorf("Received(%q…) =\n%q\nwant\n%q", tt.from, got, tt.want)
		}
		// Every continuation line starts with whitespace (RFC 5322 §2.2.3 folding).
		lines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
		for _, l := range lines[1:] {
			if l == "" || (l[0] != '\t' && l[0] != ' ') {
				t.Errorf("line %q of %q is not a folded continuation", l, got)
			}
		}
		if !regexp.MustCompile(`; *\r\n\t[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n$`).MatchString(got) {
			t.Errorf("date part of %q is not RFC 5322", got)
		}
	}
}

func TestLimitBody(t *testing.T) {
	tests := []struct {
		size, max int64
		tooLarge  bool
	}{
		{0, 10, false}, {9, 10, false}, {10, 10, false}, {11, 10, true}, {100000, 10, true}, {5, 0, false},
	}
	for _, tt := range tests {
		data := bytes.Repeat([]byte("x"), int(tt.size))
		got, err := io.ReadAll(LimitBody(bytes.NewReader(data), tt.max))
		if tt.tooLarge {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("size %d max %d: err = %v, want ErrTooLarge", tt.size, tt.max, err)
			}
			if int64(len(got)) > tt.max {
				t.Errorf("size %d max %d: returned %d bytes, more than max", tt.size, tt.max, len(got))
			}
			continue
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("size %d max %d: got %d bytes, err %v", tt.size, tt.max, len(got), err)
		}
	}
}
