package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"mailq/queue"
	"mailq/queue/pgstore"
	"mailq/queue/pgstore/pgtest"
	"mailq/queue/queuetest"
)

// TestConformance runs the store conformance suite on PostgreSQL. A reopen
// keeps the node name, as a restarted node does: its leases are dead and
// taken back at once.
func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		dsn := migratedDatabase(t)
		return func(t *testing.T, opts queue.Options) queuetest.Store {
			return openNode(t, dsn, "node-a", opts, time.Minute)
		}
	})
}

var (
	templateMu  sync.Mutex
	templateDSN string
)

// migratedDatabase is a fresh database with the schema already in place:
// a copy of one migrated once per test binary (migrating costs more than
// copying). Tests of migration itself use pgtest.NewDatabase.
func migratedDatabase(t testing.TB) string {
	t.Helper()
	templateMu.Lock()
	defer templateMu.Unlock()
	if templateDSN == "" {
		dsn := pgtest.NewDatabase(t)
		s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "template"})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		templateDSN = dsn
	}
	return pgtest.Clone(t, templateDSN)
}

func openNode(t testing.TB, dsn, node string, opts queue.Options, lease time.Duration) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Options: opts, Node: node, LeaseTime: lease, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("pgstore.Open: %v", err)
	}
	return s
}
