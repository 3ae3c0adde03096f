package pgstore_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"mailq/queue/pgstore"
	"mailq/queue/pgstore/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Three nodes starting at once on an empty database: one migrates, the
// others wait for it and find the schema current; none fails.
func TestOpenMigratesOnceFromThreeNodesAtOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	stores := make([]*pgstore.Store, 3)
	errs := make([]error, 3)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = pgstore.Open(context.Background(), dsn, pgstore.Options{Node: string(rune('a' + i))})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer stores[i].Close()
		if v := stores[i].SchemaVersion(); v != pgstore.LatestVersion() || v == 0 {
			t.Errorf("node %d: schema version %d, want %d", i, v, pgstore.LatestVersion())
		}
	}
	// Opening again migrates nothing and keeps the version.
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "d"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.SchemaVersion() != pgstore.LatestVersion() {
		t.Errorf("reopen: version %d", s.SchemaVersion())
	}
}
