package boltstore

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitGroupsConcurrentEnqueues proves that enqueues arriving
// while a commit is on disk share the next one: 32 concurrent submitters
// (the benchmark's session count) cost two commits, not 32, and OnCommit
// reports each commit with the writes it carried.
func TestGroupCommitGroupsConcurrentEnqueues(t *testing.T) {
	const submitters = 32
	var mu sync.Mutex
	var commits []int
	firstCommit := make(chan struct{})
	release := make(chan struct{})
	opts := Options{OnCommit: func(writes int) {
		mu.Lock()
		commits = append(commits, writes)
		first := len(commits) == 1
		mu.Unlock()
		if first {
			close(firstCommit)
			<-release // hold the writer, as a slow fsync does
		}
	}}
	s, err := Open(filepath.Join(t.TempDir(), "queue.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	enqueue := func(i int) error {
		_, err := s.Enqueue(Envelope{Sender: "a@example.com", Recipients: []RecipientSpec{{Address: "b@example.org"}}},
			strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)))
		return err
	}
	errs := make(chan error, submitters)
	go func() { errs <- enqueue(0) }()
	<-firstCommit
	for i := 1; i < submitters; i++ {
		go func() { errs <- enqueue(i) }()
	}
	// Wait (for a condition, not a time) until the other 31 wait for the writer.
	for deadline := time.Now().Add(30 * time.Second); len(s.reqs) < submitters-1; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d enqueues waiting for the writer, want %d", len(s.reqs), submitters-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range submitters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, submitters - 1}; fmt.Sprint(commits) != fmt.Sprint(want) {
		t.Fatalf("commits carried %v writes, want %v (one commit for all enqueues that waited)", commits, want)
	}
	if st, err := s.Stats(); err != nil || st.Live != submitters {
		t.Fatalf("stats %+v, %v: want %d live messages", st, err, submitters)
	}
}
