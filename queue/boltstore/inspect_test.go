package boltstore

import (
	"errors"
	"testing"
)

// TestOpenReadOnly: with the daemon's store closed, the file can be read
// (and not written); while it is open, OpenReadOnly says it is in use
// instead of waiting for it.
func TestOpenReadOnly(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "hello")
	path := ts.path
	if _, err := OpenReadOnly(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenReadOnly beside an open store: %v, want ErrLocked", err)
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if m, err := ro.Get(id); err != nil || m.Sender != "s@example.com" {
		t.Fatalf("Get read-only: %+v, %v", m, err)
	}
	if st, err := ro.Stats(); err != nil || st.Queued != 1 || st.Live != 1 {
		t.Errorf("Stats read-only: %+v, %v", st, err)
	}
	if err := ro.Hold(id); err == nil {
		t.Errorf("Hold on a read-only store succeeded")
	}
}
