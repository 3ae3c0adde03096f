package clientconf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFile: readFile reads a file whole, small or larger than its
// first buffer, and its errors are os.ReadFile's kind: a missing file is
// fs.ErrNotExist, one this user may not read fs.ErrPermission.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4095, 4096, 4097, 100_000} {
		path := filepath.Join(dir, "f")
		want := strings.Repeat("x", size)
		if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(path)
		if err != nil || string(got) != want {
			t.Errorf("readFile of %d bytes: %d bytes, %v", size, len(got), err)
		}
	}
	if _, err := readFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("readFile of a missing file: %v, want fs.ErrNotExist naming it", err)
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked")
		os.WriteFile(locked, nil, 0o000)
		if _, err := readFile(locked); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("readFile of an unreadable file: %v, want fs.ErrPermission", err)
		}
	}
}
