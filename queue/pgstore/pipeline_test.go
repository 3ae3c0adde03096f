package pgstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The batching writer and the large-body commit rest on this: a pgx batch
// sent outside a transaction runs as ONE implicit transaction (one Sync
// for the pipeline), so when a later statement fails the earlier ones are
// rolled back too, and when Close returns without error all committed.
func TestPipelinedBatchIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, migratedDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE TABLE p (x int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("INSERT INTO p VALUES (1)")
	b.Queue("INSERT INTO p VALUES (2)")
	b.Queue("SELECT 1 / 0")
	if err := pool.SendBatch(ctx, b).Close(); err == nil {
		t.Fatal("a batch with a failing statement succeeded")
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM p").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows of the failed batch were kept (%v); want 0", n, err)
	}
	b = &pgx.Batch{}
	b.Queue("INSERT INTO p VALUES (1)")
	b.Queue("INSERT INTO p VALUES (2)")
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM p").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows after a good batch (%v); want 2", n, err)
	}
}
