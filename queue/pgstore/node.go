package pgstore

// A node's identity and its leases' lifetime.
//
// Leases are fenced by their epoch, so a node that lost a lease can never
// overwrite the new holder's outcome; but two nodes must also never deliver
// one message at once. A lease therefore lives as long as its node does:
// every LeaseTime/3 the node extends all the leases it holds, so a lease
// runs out only LeaseTime after its node stopped renewing (it died, hung
// or lost the database), however long a delivery waits for a busy route.
//
// Recovery at start takes back every lease under the node's name, so two
// live processes sharing a name would take each other's work. A session
// advisory lock on the name, held for the life of the store, refuses the
// second one. (The lock guards identity only; lease correctness rests on
// the lease rows, FOR UPDATE SKIP LOCKED and the epoch.)

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// nodeLockWait is how long Open waits for the name's lock: after a kill -9
// the old session's backend may take a moment to notice it is gone.
var nodeLockWait = 15 * time.Second

// lockNode opens a session of its own and takes the advisory lock on the
// node name in it, waiting up to nodeLockWait.
func lockNode(ctx context.Context, cfg *pgx.ConnConfig, node string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect for the node lock: %w", err)
	}
	deadline := time.Now().Add(nodeLockWait)
	for {
		var got bool
		err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext('mailq node ' || $1))", node).Scan(&got)
		if err != nil {
			conn.Close(context.Background())
			return nil, fmt.Errorf("pgstore: take the lock on node name %q: %w", node, err)
		}
		if got {
			return conn, nil
		}
		if time.Now().After(deadline) {
			conn.Close(context.Background())
			return nil, fmt.Errorf("pgstore: node name %q is in use by another running mailq on this database; give each node its own [queue] node_name", node)
		}
		select {
		case <-ctx.Done():
			conn.Close(context.Background())
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// renewLeases extends this node's leases every LeaseTime/3 until Close.
func (s *Store) renewLeases() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.LeaseTime / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			if s.renewalPaused.Load() {
				continue
			}
			// A failed renewal is retried at the next tick; two in a row
			// still leave a third of the lease time.
			s.renewOnce(s.ctx)
		}
	}
}

func (s *Store) renewOnce(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET lease_expiry = now() + make_interval(secs => $2)
		WHERE lease_owner = $1`, s.opts.Node, s.opts.LeaseTime.Seconds())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
