package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"mailq/queue/pgstore/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Each test gets its own empty database on a server that runs as a non-root
// user, with fsync on and no TCP listener.
func TestNewDatabaseIsFreshAndPrivate(t *testing.T) {
	ctx := context.Background()
	dsns := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	if dsns[0] == dsns[1] {
		t.Fatalf("two databases share a DSN: %s", dsns[0])
	}
	for i, dsn := range dsns {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE only_here (x int)"); err != nil {
			t.Fatalf("database %d: %v (not fresh?)", i, err)
		}
		var fsync, listen, syncCommit string
		if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('listen_addresses'), current_setting('synchronous_commit')").Scan(&fsync, &listen, &syncCommit); err != nil {
			t.Fatal(err)
		}
		if fsync != "on" || listen != "" || syncCommit != "on" {
			t.Errorf("fsync=%q listen_addresses=%q synchronous_commit=%q; want on, empty, on", fsync, listen, syncCommit)
		}
	}
}
