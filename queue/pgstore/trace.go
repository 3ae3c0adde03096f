package pgstore

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// counter counts what the store sends: statements, and round trips (a
// query, or a pipelined batch of statements). Statements shows the
// database's work; round trips the latency a call pays.
type counter struct {
	statements, roundTrips atomic.Int64
}

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.statements.Add(1)
	c.roundTrips.Add(1)
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.roundTrips.Add(1)
	return ctx
}

func (c *counter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.statements.Add(1)
}

func (c *counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// Sent reports how many statements and round trips the store has sent to
// the database since Open (for metrics and the benchmark's per-message
// figures).
func (s *Store) Sent() (statements, roundTrips int64) {
	return s.counter.statements.Load(), s.counter.roundTrips.Load()
}
