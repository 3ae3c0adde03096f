package main

import (
	"strings"
	"testing"
	"time"
)

// The tally is what makes the benchmark's "nothing lost, nothing twice"
// exact: it must count only smtp-sink's X-Rcpt-Args lines, by tag (the
// address's domain), and notice an address that arrives twice.
func TestTallyCountsRecipientsByTagAndFindsDuplicates(t *testing.T) {
	dump := strings.Join([]string{
		"X-Client-Addr: 127.0.0.1",
		"X-Mail-Args: <a@example.com>",
		"X-Rcpt-Args: <1x@r1-mailq-e2e.bench>",
		"X-Rcpt-Args: <2x@r1-mailq-e2e.bench> NOTIFY=NEVER",
		"Received: from vm ([127.0.0.1])",
		"To: <x@r1-mailq-e2e.bench>",
		"",
		"X-Rcpt-Args-not-a-recipient",
		" X-Rcpt-Args: <9x@r1-mailq-e2e.bench>", // not at a line start: body text
		"X-Mail-Args: <a@example.com>",
		"X-Rcpt-Args: <1x@r1-postfix-e2e.bench>",
		"X-Rcpt-Args: <1x@r1-postfix-e2e.bench>", // the same address again: a duplicate
		"",
	}, "\n")
	tl := newTally()
	tl.add([]byte(dump))
	for _, c := range []struct {
		tag        string
		got, dups  int
		want       int
		verifyFail bool
	}{
		{"r1-mailq-e2e.bench", 2, 0, 2, false},
		{"r1-postfix-e2e.bench", 2, 1, 1, true},
		{"r1-mailq-sendmail.bench", 0, 0, 1, true},
	} {
		got, dups := tl.count(c.tag)
		if got != c.got || dups != c.dups {
			t.Errorf("%s: counted %d recipients, %d duplicates; want %d, %d", c.tag, got, dups, c.got, c.dups)
		}
		if err := tl.verify(c.tag, c.want); (err != nil) != c.verifyFail {
			t.Errorf("%s: verify(%d) = %v, want failure %v", c.tag, c.want, err, c.verifyFail)
		}
	}
}

func TestTallyWaitForWakesOnArrival(t *testing.T) {
	tl := newTally()
	go func() {
		time.Sleep(20 * time.Millisecond)
		tl.add([]byte("X-Rcpt-Args: <1x@t.bench>\nX-Rcpt-Args: <2x@t.bench>\n"))
	}()
	if _, err := tl.waitFor("t.bench", 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.waitFor("t.bench", 3, 50*time.Millisecond); err == nil {
		t.Fatal("waitFor(3) returned with only 2 recipients counted")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1}, 2.5}, {nil, 0}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
