package policy

import (
	"strings"
	"testing"
)

// BenchmarkBuildDSN measures composing a two-recipient bounce with a 4 KiB
// original attached in full.
func BenchmarkBuildDSN(b *testing.B) {
	n := sampleNotice()
	n.Ret = "FULL"
	orig := originalMsg + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 64)
	b.SetBytes(int64(len(orig)))
	for b.Loop() {
		if _, err := BuildDSN(n, strings.NewReader(orig)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClassifySchedule measures deciding a ten-recipient attempt.
func BenchmarkClassifySchedule(b *testing.B) {
	p := DefaultRetryPolicy()
	res := sampleResult(10)
	for b.Loop() {
		Schedule(Classify(res, nil), 3, t0, Deadline(t0, 0, p), p, nil)
	}
}
