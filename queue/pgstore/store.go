// Package pgstore is the queue.Store on PostgreSQL, for several mailq nodes
// sharing one queue: leases claimed with FOR UPDATE SKIP LOCKED and fenced
// by an epoch, the database's clock for lease expiry, LISTEN/NOTIFY as a
// wake-up over a bounded poll.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailq/queue"
)

// Options configures Open.
type Options struct {
	queue.Options
	// Node names this process in lease_owner; unique among the nodes on
	// one database (default: the host name). At Open, leases this node
	// left are taken back at once (it is restarting: they are dead).
	Node string
	// LeaseTime is how long a lease lasts before another node may take the
	// message back as interrupted; longer than the longest attempt.
	// Default 10m.
	LeaseTime time.Duration
	// PollInterval bounds how late Changed fires when a NOTIFY is lost (the
	// listening connection dropped) or something became due by the passing
	// of time on another node. Default 1s.
	PollInterval time.Duration
}

// Store is a queue.Store on PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	opts    Options
	version int
	writer  *writer

	changed chan struct{}
	events  queue.Broadcast
	counter *counter

	// nodeLock is a session of its own holding the advisory lock on the
	// node name for as long as the store is open (lockNode).
	nodeLock *pgx.Conn
	// renewalPaused stops renewLeases, as a hung process would (tests).
	renewalPaused atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	deliveredTotal, bouncedTotal, deferredTotal atomic.Int64
}

var _ queue.Store = (*Store)(nil)

const (
	notifyDue    = "mailq_due"
	notifyEvents = "mailq_events"
)

// Open connects to the database dsn (a libpq keyword/value string or URL),
// migrates the schema, takes back this node's leases left by a previous
// run, and starts listening for changes.
func Open(ctx context.Context, dsn string, opts Options) (_ *Store, err error) {
	if opts.Retention == 0 {
		opts.Retention = 168 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseTime <= 0 {
		opts.LeaseTime = 10 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Node == "" {
		opts.Node, _ = hostname()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: the queue DSN does not parse: %w", err)
	}
	// Durability is PostgreSQL's: an enqueue is acknowledged after COMMIT
	// returns, which must mean flushed to disk.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	cnt := &counter{}
	cfg.ConnConfig.Tracer = cnt
	if !strings.Contains(dsn, "pool_max_conns") {
		// Enough for the delivery workers, intake and the listener; a
		// DSN's pool_max_conns overrides it.
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("pgstore: connect to the queue database: %w", err)
	}
	version, err := migrate(ctx, pool)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, opts: opts, version: version, changed: make(chan struct{}, 1), counter: cnt}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.nodeLock, err = lockNode(ctx, cfg.ConnConfig, opts.Node); err != nil {
		s.cancel()
		return nil, err
	}
	defer func() {
		if err != nil {
			s.nodeLock.Close(context.Background())
		}
	}()
	if err := s.recoverOwnLeases(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	if err := s.dropDeadPending(ctx, true); err != nil {
		s.cancel()
		return nil, fmt.Errorf("pgstore: drop unfinished bodies: %w", err)
	}
	s.writer = startWriter(s)
	s.wg.Add(2)
	go s.listen()
	go s.renewLeases()
	return s, nil
}

// SchemaVersion is the schema version of the database (after migration).
func (s *Store) SchemaVersion() int { return s.version }

// Node is the name this store leases under.
func (s *Store) Node() string { return s.opts.Node }

// Close stops the listener and the writer and closes the connections.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.writer.stop()
	s.cancel()
	s.wg.Wait()
	s.pool.Close()
	s.nodeLock.Close(context.Background())
	return nil
}

// Changed is signalled (cap 1) when something may have become due sooner:
// a NOTIFY from any node's transaction, or every PollInterval regardless
// (the poll is what correctness rests on; NOTIFY only makes it prompt).
func (s *Store) Changed() <-chan struct{} { return s.changed }

func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Store) now() time.Time { return s.opts.Now() }

// listen holds a dedicated connection that LISTENs for the due and events
// channels; it reconnects after a failure and ticks the poll meanwhile.
func (s *Store) listen() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	notes := make(chan string, 16)
	go func() {
		for s.ctx.Err() == nil {
			s.listenOnce(notes)
			select {
			case <-s.ctx.Done():
			case <-time.After(s.opts.PollInterval):
			}
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.signal()
			s.events.Fire()
		case ch := <-notes:
			if ch == notifyEvents {
				s.events.Fire()
			} else {
				s.signal()
			}
		}
	}
}

func (s *Store) listenOnce(notes chan<- string) {
	conn, err := s.pool.Acquire(s.ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	defer func() {
		// The connection goes back to the pool: stop listening on it.
		if s.ctx.Err() == nil {
			conn.Exec(context.Background(), "UNLISTEN *")
		} else {
			conn.Conn().Close(context.Background())
		}
	}()
	for _, ch := range []string{notifyDue, notifyEvents} {
		if _, err := conn.Exec(s.ctx, "LISTEN "+ch); err != nil {
			return
		}
	}
	for {
		n, err := conn.Conn().WaitForNotification(s.ctx)
		if err != nil {
			return
		}
		select {
		case notes <- n.Channel:
		default:
		}
	}
}

// tx runs fn in a transaction, again from the start after a serialization
// failure or a deadlock (SQLSTATE 40001, 40P01), and applies d after the
// commit. fn must be repeatable: it resets what it returns.
func (s *Store) tx(fn func(tx pgx.Tx, d *delta) error) error {
	if s.closed.Load() {
		return queue.ErrClosed
	}
	return s.run(fn)
}

// run is tx without the closed check (the writer finishes its batches
// while Close waits for it).
func (s *Store) run(fn func(tx pgx.Tx, d *delta) error) error {
	for attempt := 0; ; attempt++ {
		d := &delta{}
		err := pgx.BeginFunc(s.ctx, s.pool, func(tx pgx.Tx) error {
			if err := fn(tx, d); err != nil {
				return err
			}
			return d.notify(s.ctx, tx)
		})
		if err == nil {
			s.apply(d)
			return nil
		}
		if retryable(err) && attempt < 20 {
			time.Sleep(time.Duration(attempt+1) * time.Millisecond)
			continue
		}
		if s.closed.Load() && errors.Is(err, context.Canceled) {
			return queue.ErrClosed
		}
		return err
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// delta is what a transaction did that the store acts on after commit.
type delta struct {
	due, events                  bool // NOTIFY due / events in the transaction
	notified                     bool // queueNotify already queued them
	delivered, bounced, deferred int64
}

// queueNotify queues d's NOTIFYs in b.
func (d *delta) queueNotify(b *pgx.Batch) {
	d.notified = true
	if d.due {
		b.Queue("SELECT pg_notify($1, '')", notifyDue)
	}
	if d.events {
		b.Queue("SELECT pg_notify($1, '')", notifyEvents)
	}
}

func (d *delta) notify(ctx context.Context, tx pgx.Tx) error {
	if d.notified {
		return nil
	}
	if d.due {
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", notifyDue); err != nil {
			return err
		}
	}
	if d.events {
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", notifyEvents); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) apply(d *delta) {
	s.deliveredTotal.Add(d.delivered)
	s.bouncedTotal.Add(d.bounced)
	s.deferredTotal.Add(d.deferred)
	if d.due {
		s.signal()
	}
	if d.events {
		s.events.Fire()
	}
}

// recoverOwnLeases takes back the leases this node held when it stopped:
// their attempts stay recorded as interrupted and their recipients are due
// now. Other nodes' leases are left to expire (LeaseTime).
func (s *Store) recoverOwnLeases(ctx context.Context) error {
	err := s.tx(func(tx pgx.Tx, d *delta) error {
		rows, err := tx.Query(ctx, "SELECT id FROM messages WHERE lease_owner = $1 FOR UPDATE", s.opts.Node)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.unleaseOne(tx, d, queue.ID(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: take back this node's (%s) leases: %w", s.opts.Node, err)
	}
	return nil
}
