package boltstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanCloseSkipsTheWalkOnlyWhileUnchanged: after a clean Close, Open
// checks the header only (a damaged page deep in the tree goes unseen, as
// designed); any change to the file after that Close, a crash (no Close)
// included, brings back the whole walk, which finds the damage.
func TestCleanCloseSkipsTheWalkOnlyWhileUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if _, err := s.Enqueue(Envelope{Sender: "a@example.com", Recipients: []RecipientSpec{{Address: "b@example.com"}}},
			strings.NewReader("Subject: x\r\n\r\n"+strings.Repeat("body ", 200))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cleanPath(path)); err != nil {
		t.Fatalf("Close wrote no clean stamp: %v", err)
	}
	// Open after a clean stop removes the stamp: a crash from here on is not clean.
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cleanPath(path)); err == nil {
		t.Fatal("the clean stamp survived Open; a crash after it would skip the walk")
	}
	s.Close()

	// Damage a page that only the walk reads (a page past the metas, with
	// the mtime put back as the stamp has it): the quick check passes it.
	info, _ := os.Stat(path)
	b, _ := os.ReadFile(path)
	meta, problem := headerProblem(strings.NewReader(string(b)), int64(len(b)))
	if problem != "" {
		t.Fatal(problem)
	}
	ps := int(meta.pageSize)
	damagedCopy := append([]byte(nil), b...)
	for i := 2 * ps; i < 2*ps+64; i++ {
		damagedCopy[i] ^= 0xff
	}
	if p, _ := walkReader(strings.NewReader(string(damagedCopy)), int64(len(damagedCopy)), 1); len(p) == 0 {
		t.Fatal("the walk does not see the planted damage; the test proves nothing")
	}
	os.WriteFile(path, damagedCopy, 0o600)
	os.Chtimes(path, info.ModTime(), info.ModTime())
	if _, err := precheck(path); err != nil {
		t.Fatalf("unchanged since a clean close, only the header is checked: %v", err)
	}
	// precheck removed the stamp, as Open would: now the whole walk runs.
	if _, err := precheck(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("without a clean stamp the walk must find the damage, got %v", err)
	}
}
