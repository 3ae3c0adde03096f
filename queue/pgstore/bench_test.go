package pgstore_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
	"mailq/queue/boltstore"
	"mailq/queue/pgstore"
	"mailq/queue/pgstore/pgtest"
)

// benchBody is a typical small message (~2 KiB).
var benchBody = "From: a@example.com\r\nTo: b@example.org\r\nSubject: benchmark\r\n\r\n" + strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 45)

type benchStore struct {
	name string
	open func(b *testing.B) queue.Store
}

// benchStores are the two backends, each on fresh storage per benchmark:
// bbolt in a temp file (fsync per group commit), PostgreSQL from pgtest
// (fsync on, synchronous_commit on), so the ratio compares like with like
// on one machine in one run.
var benchStores = []benchStore{
	{"bbolt", func(b *testing.B) queue.Store {
		s, err := boltstore.Open(filepath.Join(b.TempDir(), "queue.db"), queue.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
	{"postgres", func(b *testing.B) queue.Store {
		s, err := pgstore.Open(context.Background(), pgtest.NewDatabase(b), pgstore.Options{Node: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

// BenchmarkEnqueue32: 32 concurrent submitters, each Enqueue durable before
// it returns; msg/s per backend (the target: postgres within 2× of
// bbolt). Run: go test -run '^$' -bench Enqueue32 -benchtime 3000x ./queue/pgstore/
func BenchmarkEnqueue32(b *testing.B) {
	for _, bs := range benchStores {
		b.Run(bs.name, func(b *testing.B) {
			s := bs.open(b)
			defer s.Close()
			env := queue.Envelope{Sender: "a@example.com", Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}, Source: "smtp"}
			var failed atomic.Int64
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Enqueue(env, strings.NewReader(benchBody)); err != nil {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d enqueues failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
			if ps, ok := s.(*pgstore.Store); ok {
				st, rt := ps.Sent()
				b.ReportMetric(float64(st)/float64(b.N), "stmts/msg")
				b.ReportMetric(float64(rt)/float64(b.N), "roundtrips/msg")
			}
		})
	}
}

// BenchmarkDeliverCycle: the delivery side on one node: messages already
// queued are leased (16 at a time, as the workers do) and each recorded
// delivered. Reports delivered msg/s, and for PostgreSQL the commits
// (pg_stat_database.xact_commit), statements and round trips per
// delivered message. Run: go test -run '^$' -bench DeliverCycle -benchtime 2000x ./queue/pgstore/
func BenchmarkDeliverCycle(b *testing.B) {
	for _, bs := range benchStores {
		b.Run(bs.name, func(b *testing.B) {
			s := bs.open(b)
			defer s.Close()
			env := queue.Envelope{Sender: "a@example.com", Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}, Source: "smtp"}
			for range b.N {
				if _, err := s.Enqueue(env, strings.NewReader(benchBody)); err != nil {
					b.Fatal(err)
				}
			}
			ps, _ := s.(*pgstore.Store)
			var commits0 int64
			var st0, rt0 int64
			if ps != nil {
				commits0 = xactCommits(b, ps)
				st0, rt0 = ps.Sent()
			}
			start := time.Now()
			b.ResetTimer()
			delivered := 0
			for delivered < b.N {
				ls, err := s.Lease(time.Now(), 16)
				if err != nil || len(ls) == 0 {
					b.Fatalf("lease: %d, %v after %d delivered", len(ls), err, delivered)
				}
				for _, l := range ls {
					if err := s.RecordOutcome(l, queue.Attempt{Route: "r"}, []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideDelivered}}); err != nil {
						b.Fatal(err)
					}
					delivered++
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(delivered)/time.Since(start).Seconds(), "msg/s")
			if ps != nil {
				st, rt := ps.Sent()
				// The stats query itself is one commit, taken off.
				b.ReportMetric(float64(xactCommits(b, ps)-commits0-1)/float64(delivered), "commits/msg")
				b.ReportMetric(float64(st-st0)/float64(delivered), "stmts/msg")
				b.ReportMetric(float64(rt-rt0)/float64(delivered), "roundtrips/msg")
			}
		})
	}
}

var statsDSN string

func xactCommits(b *testing.B, _ *pgstore.Store) int64 {
	b.Helper()
	if statsDSN == "" {
		statsDSN = pgtest.DSN(b, "postgres")
	}
	conn, err := pgx.Connect(context.Background(), statsDSN)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Statistics are sent by backends at transaction end, with a delay:
	// ask for a fresh snapshot.
	var n int64
	err = conn.QueryRow(context.Background(), "SELECT pg_stat_force_next_flush()").Scan(new(any))
	_ = err
	if err := conn.QueryRow(context.Background(), "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE 't\\_%'").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkStatsBig: Stats over a queue of MAILQ_BENCH_MESSAGES (default
// 100000) deferred messages. pgstore counts with a GROUP BY, so its time
// grows with the queue; boltstore reads counters kept by every commit
// (issue 13). The rows are written by one INSERT, not through Enqueue:
// Stats reads only their status, sequence and arrival.
func BenchmarkStatsBig(b *testing.B) {
	n := 100000
	if v := os.Getenv("MAILQ_BENCH_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("MAILQ_BENCH_MESSAGES=%q: %v", v, err)
		}
	}
	dsn := pgtest.NewDatabase(b)
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `INSERT INTO messages (id, seq, status, sched_at, arrival, chunks, data)
		SELECT lpad(to_hex(i), 16, '0'), i, 'deferred', $2 + i, $1 + i, 1, '{}'::jsonb FROM generate_series(1, $3::bigint) AS i`,
		time.Now().UnixNano(), time.Now().Add(100*time.Hour).UnixNano(), n)
	if err == nil {
		_, err = conn.Exec(context.Background(), "ANALYZE messages")
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		st, err := s.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if st.Deferred != n {
			b.Fatalf("Stats says %d deferred, want %d", st.Deferred, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/stats")
}
