package pgstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

// ErrIDTaken means Import found a different message under the id it was
// to store: the database already took mail of its own before the
// migration (its ids and the bbolt file's come from separate sequences).
var ErrIDTaken = errors.New("pgstore: the database holds a different message under this id")

// Import stores a message read from another store (`mailq migrate-queue`)
// under its own id, with its recipients' states, attempt history, hold and
// body, in one transaction. It is idempotent: when the same message (same
// id, arrival and sender) is already there it stores nothing and returns
// false. The id sequence is moved past the imported id, so messages
// enqueued later never collide with it. m must not be leased (the caller
// makes a message that was in flight due now, as recovery after a crash
// would).
func (s *Store) Import(m *queue.Message, body io.Reader) (imported bool, err error) {
	seq, err := strconv.ParseInt(string(m.ID), 16, 64)
	if err != nil || seq <= 0 || formatID(seq) != m.ID {
		return false, fmt.Errorf("pgstore: import %s: not a mailq queue id (16 hex digits)", m.ID)
	}
	d := &delta{}
	err = pgx.BeginFunc(s.ctx, s.pool, func(tx pgx.Tx) error {
		var data []byte
		err := tx.QueryRow(s.ctx, "SELECT data FROM messages WHERE id = $1", string(m.ID)).Scan(&data)
		switch {
		case err == nil:
			var existing messageData
			if err := json.Unmarshal(data, &existing); err != nil {
				return fmt.Errorf("message %s: undecodable data: %w", m.ID, err)
			}
			if !existing.Arrival.Equal(m.Arrival) || existing.Sender != m.Sender {
				return fmt.Errorf("%w %s (arrived %s from <%s>, not %s from <%s>); migrate into an empty database, before any node takes mail",
					ErrIDTaken, m.ID, existing.Arrival.Format("2006-01-02T15:04:05Z07:00"), existing.Sender, m.Arrival.Format("2006-01-02T15:04:05Z07:00"), m.Sender)
			}
			return nil // already imported
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		chunks := 0
		buf := make([]byte, chunkSize)
		for {
			n, rerr := io.ReadFull(body, buf)
			if n > 0 {
				if _, err := tx.Exec(s.ctx, "INSERT INTO body_chunks (message_id, n, data) VALUES ($1, $2, $3)", string(m.ID), chunks, buf[:n]); err != nil {
					return err
				}
				chunks++
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				return fmt.Errorf("read the body: %w", rerr)
			}
		}
		r := &record{Message: *m, Chunks: chunks}
		r.Recipients = append([]queue.Recipient(nil), m.Recipients...)
		r.Attempts = append([]queue.Attempt(nil), m.Attempts...)
		if r.Held {
			// The time held before the move is in HeldFor only once released
			// there; it counts from now on here.
			r.HeldAt = s.now()
		}
		b := &pgx.Batch{}
		if err := s.insert(b, r, seq); err != nil {
			return err
		}
		if err := s.save(b, r); err != nil { // status columns and the attempts
			return err
		}
		b.Queue("SELECT setval('message_seq', GREATEST($1::bigint, (SELECT last_value FROM message_seq)))", seq)
		if err := send(s.ctx, tx, b); err != nil {
			return err
		}
		imported, d.due = true, true
		return d.notify(s.ctx, tx)
	})
	if err != nil {
		imported = false
		if errors.Is(err, ErrIDTaken) {
			return false, err
		}
		return false, fmt.Errorf("pgstore: import %s: %w", m.ID, err)
	}
	s.apply(d)
	return imported, nil
}
