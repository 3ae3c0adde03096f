package boltstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPageWalk: whatever bytes a store file holds, the walk that guards
// Open returns problems or none; it never panics or runs away.
func FuzzPageWalk(f *testing.F) {
	path := filepath.Join(f.TempDir(), "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, body := range []string{"a", "bb", "ccc"} {
		if _, err := s.Enqueue(envelope("a@b.test", "r@c.test"), strings.NewReader(body)); err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	m, err := readMeta(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:int64(m.hwm)*int64(m.pageSize)]) // the pages in use, not bbolt's preallocation
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, data []byte) {
		problems, pages := walkReader(bytes.NewReader(data), int64(len(data)), 10)
		if len(problems) == 0 && pages == 0 {
			t.Fatalf("a clean walk that reached no page")
		}
	})
}
