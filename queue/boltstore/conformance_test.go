package boltstore_test

import (
	"path/filepath"
	"testing"

	"mailq/queue"
	"mailq/queue/boltstore"
	"mailq/queue/queuetest"
)

// TestConformance runs the store conformance suite on the bbolt store.
func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		path := filepath.Join(t.TempDir(), "queue.db")
		return func(t *testing.T, opts queue.Options) queuetest.Store {
			s, err := boltstore.Open(path, opts)
			if err != nil {
				t.Fatalf("Open(%s): %v", path, err)
			}
			return s
		}
	})
}
