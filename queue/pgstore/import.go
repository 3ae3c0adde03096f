package pgstore

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

// Import copies a message from another store (mailq migrate-queue: bbolt
// to PostgreSQL) with its id, state, attempt history and body, in one
// transaction. A message whose id is already here is left alone and
// reported as not imported, so a rerun copies nothing twice. The message
// must not be leased (open the source store first: that takes its leases
// back). The id sequence moves past the imported id, so new ids never
// collide with it.
func (s *Store) Import(m *queue.Message, body io.Reader) (imported bool, err error) {
	if m == nil || len(m.Recipients) == 0 {
		return false, errors.New("pgstore: import: a message with recipients is required")
	}
	seq, err := strconv.ParseInt(string(m.ID), 16, 64)
	if err != nil || seq <= 0 {
		return false, fmt.Errorf("pgstore: import %s: not a queue id (16 hex digits)", m.ID)
	}
	if s.closed.Load() {
		return false, queue.ErrClosed
	}
	buf := chunkPool.Get().(*[chunkSize]byte)
	defer chunkPool.Put(buf)
	err = pgx.BeginFunc(s.ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		// The lock orders two imports of one id; the second finds it.
		if _, err := tx.Exec(s.ctx, "SELECT pg_advisory_xact_lock($1)", seq); err != nil {
			return err
		}
		if err := tx.QueryRow(s.ctx, "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)", string(m.ID)).Scan(&exists); err != nil || exists {
			return err
		}
		cr := &chunkReader{r: body, buf: buf[:]}
		n := 0
		for !cr.eof {
			chunk, err := cr.next()
			if err != nil {
				return fmt.Errorf("read the body: %w", err)
			}
			if len(chunk) == 0 {
				continue
			}
			if _, err := tx.Exec(s.ctx, "INSERT INTO body_chunks (message_id, n, data) VALUES ($1, $2, $3)", string(m.ID), n, chunk); err != nil {
				return err
			}
			n++
		}
		if cr.size != m.Size {
			return fmt.Errorf("the body has %d bytes, the message says %d", cr.size, m.Size)
		}
		r := &record{Message: *m, Chunks: n}
		r.Message.Status, r.Message.NextAttempt = "", r.earliest()
		b := &pgx.Batch{}
		if err := s.insert(b, []*record{r}, []int64{seq}); err != nil {
			return err
		}
		// insert wrote a new message's columns; save sets the rest
		// (status and schedule, held, finished) and the attempts.
		r.attemptsFrom = 0
		if err := s.save(b, r); err != nil {
			return err
		}
		b.Queue("SELECT setval('message_seq', greatest($1, (SELECT last_value FROM message_seq)))", seq)
		if err := send(s.ctx, tx, b); err != nil {
			return err
		}
		imported = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: import %s: %w", m.ID, err)
	}
	if imported {
		s.signal()
	}
	return imported, nil
}
