package boltstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// damagedStoreFile writes a closed store of n messages (bodies of a few
// chunks among them) and returns its path. Its layout is the same on every
// run, so a test that damages chosen bytes damages the same records each
// time: the messages go in one at a time under a fixed clock, and the file
// is then copied afresh (compactInPlace), because the store's map freelist
// hands out pages in Go's random map order.
func damagedStoreFile(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "queue.db")
	at := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	s, err := Open(path, Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		body := fmt.Sprintf("Subject: %d\r\n\r\n%s", i, strings.Repeat("x", (i%5)*40000))
		if _, err := s.Enqueue(envelope("a@b.test", fmt.Sprintf("r%d@c.test", i)), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	compactInPlace(t, path)
	return path
}

// compactInPlace rewrites the bbolt file at path with bolt.Compact, one
// key per transaction: a commit that touches several buckets allocates
// their pages in map order, one that touches a single bucket in key order.
func compactInPlace(t testing.TB, path string) {
	t.Helper()
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tmp := path + ".compact"
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.Compact(dst, src, 1); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesDamagedStores: every kind of damage issue 17 names ends
// Open with a DamagedError saying what is wrong, never a panic, a fault
// or a silent fresh start.
func TestOpenRefusesDamagedStores(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"both meta pages", func(t *testing.T, path string) {
			overwrite(t, path, 16+48, []byte("garbage!")) // txid of meta 0
			overwrite(t, path, 4096+16+48, []byte("garbage!"))
		}, "both bbolt meta pages"},
		{"truncated to a third", func(t *testing.T, path string) {
			// A third of what the pages in use need (bbolt grows the file
			// ahead of use, so a third of the file might cut nothing).
			f, _ := os.Open(path)
			info, _ := f.Stat()
			m, err := readMeta(f, info.Size())
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			os.Truncate(path, int64(m.hwm)*int64(m.pageSize)/3)
		}, "cut short"},
		{"zero bytes", func(t *testing.T, path string) { os.Truncate(path, 0) }, "empty (0 bytes)"},
		{"missing", func(t *testing.T, path string) { os.Remove(path) }, "the file is missing"},
		{"not bbolt", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("this is a text file, not a database\n", 500)), 0o600)
		}, "not a bbolt database"},
		{"another program's bbolt", func(t *testing.T, path string) {
			os.Remove(path)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error {
				b, _ := tx.CreateBucket([]byte("keys"))
				return b.Put([]byte("k"), []byte("v"))
			})
			db.Close()
		}, `another program's bbolt database (buckets "keys"`},
		{"newer schema", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFormat).Put(keySchema, []byte("9")) })
			db.Close()
		}, "newer mailq (schema version 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := damagedStoreFile(t, 20)
			c.damage(t, path)
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a damaged store")
			}
			var de *DamagedError
			if !errors.As(err, &de) || !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open: %v (%T), want a *DamagedError", err, err)
			}
			for _, want := range []string{c.want, path, "mailq check-store", "mailq salvage"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestOpenByteFlipsNeverPanic flips random bytes all over a store, many
// times over; Open must either refuse it with a DamagedError or open it
// (a flip in free space or a value is not structural), never panic.
func TestOpenByteFlipsNeverPanic(t *testing.T) {
	clean := damagedStoreFile(t, 200)
	orig, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	rounds := 24
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 17))
		b := append([]byte(nil), orig...)
		flips := 1 + rng.IntN(1000)
		if seed%4 == 0 {
			flips = 1000
		}
		for range flips {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		path := filepath.Join(t.TempDir(), "queue.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("seed %d (%d flips): Open panicked: %v", seed, flips, r)
				}
			}()
			s, err := Open(path, Options{OnDamaged: func(ID, error) {}})
			if err == nil {
				s.Close()
				return
			}
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("seed %d (%d flips): Open: %v, want a DamagedError", seed, flips, err)
			}
			refused++
		}()
	}
	if refused == 0 {
		t.Errorf("only %d of %d heavily damaged stores were refused", refused, rounds)
	}
}

// TestOpenWritesMarkerAndLabel: the first Open leaves the marker and the
// mailq label, and a reopen of a healthy store still works.
func TestOpenWritesMarkerAndLabel(t *testing.T) {
	path := damagedStoreFile(t, 3)
	if _, err := os.Stat(markerPath(path)); err != nil {
		t.Fatalf("no marker after first open: %v", err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen of a healthy store: %v", err)
	}
	defer s.Close()
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFormat)
		if b == nil || string(b.Get(keyFormat)) != string(formatName) || string(b.Get(keySchema)) != "1" {
			return errors.New("the store carries no mailq label")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
