package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Probe connects to the database dsn and reads its queue schema version
// without changing anything (no migration, no lease taken back): what
// `mailq --check-config` reports. version is 0 for a database no mailq has
// used yet; latest is LatestVersion, what Open would migrate to. An error
// says what failed (connecting, or a schema newer than this build).
func Probe(ctx context.Context, dsn string) (version, latest int, err error) {
	latest = LatestVersion()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, latest, fmt.Errorf("pgstore: the queue DSN does not parse: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, latest, fmt.Errorf("pgstore: connect to the queue database: %w", err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&version)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "42P01": // undefined_table: a fresh database
		return 0, latest, nil
	case errors.Is(err, pgx.ErrNoRows):
		return 0, latest, nil
	case err != nil:
		return 0, latest, fmt.Errorf("pgstore: read the queue schema version: %w", err)
	}
	if version > latest {
		return version, latest, fmt.Errorf("pgstore: the database's queue schema is version %d, newer than this mailq knows (%d): run the newer mailq", version, latest)
	}
	return version, latest, nil
}
