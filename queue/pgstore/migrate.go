package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's steps, NNN_name.sql, applied in order; the
// version is the number of the last one applied.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serialises migrations of one
// database ("mailq" in ASCII). It only orders nodes starting at once;
// nothing about leases rests on it.
const migrationLock = 0x6d61696c71

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its number", base)
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(sql)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// LatestVersion is the schema version this build migrates to.
func LatestVersion() int {
	ms, _ := loadMigrations()
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate brings the schema to LatestVersion in one transaction. Nodes that
// start at once queue on the transaction-scoped advisory lock; the first
// applies the steps, the others then find the version current. A database
// newer than this build is refused: an older binary must not write to a
// schema it does not know.
func migrate(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	var version int
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE schema_version IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&version)
		if err == pgx.ErrNoRows {
			if _, err := tx.Exec(ctx, "INSERT INTO schema_version VALUES (0)"); err != nil {
				return err
			}
			version = 0
		} else if err != nil {
			return err
		}
		latest := 0
		if len(ms) > 0 {
			latest = ms[len(ms)-1].version
		}
		if version > latest {
			return fmt.Errorf("the database's queue schema is version %d, newer than this mailq knows (%d): run the newer mailq, or restore a database of this version", version, latest)
		}
		for _, m := range ms {
			if m.version <= version {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "UPDATE schema_version SET version = $1", m.version); err != nil {
				return err
			}
			version = m.version
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: migrate the queue schema: %w", err)
	}
	return version, nil
}
