package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"mailq/queue"
)

func hostname() (string, error) { return os.Hostname() }

// record is a message as loaded for a change: its rows, decoded.
type record struct {
	queue.Message // Recipients and Attempts included (Attempts only if loaded)
	Leased        []string
	HeldAt        time.Time
	Epoch         uint64
	Owner         string // lease_owner; "" when not leased
	Chunks        int

	renewLease   bool // save sets lease_expiry = now() + LeaseTime
	attemptsFrom int  // save rewrites attempts rows from this index on
	rewriteRcpts bool // save rewrites the recipients rows (their set changed)
}

// messageData is the jsonb column: what has no column of its own.
type messageData struct {
	Sender      string        `json:"sender"`
	Size        int64         `json:"size"`
	Arrival     time.Time     `json:"arrival"`
	EnvID       string        `json:"envid,omitempty"`
	Ret         string        `json:"ret,omitempty"`
	SMTPUTF8    bool          `json:"smtputf8,omitempty"`
	EightBit    bool          `json:"eightbit,omitempty"`
	Source      string        `json:"source,omitempty"`
	HeldFor     time.Duration `json:"held_for_ns,omitempty"`
	DelayWarned bool          `json:"delay_warned,omitempty"`
	Finished    time.Time     `json:"finished,omitzero"`
	MessageID   string        `json:"message_id,omitempty"`
	Held        bool          `json:"held,omitempty"`
}

func (r *record) data() messageData {
	m := &r.Message
	return messageData{Sender: m.Sender, Size: m.Size, Arrival: m.Arrival, EnvID: m.EnvID, Ret: m.Ret,
		SMTPUTF8: m.SMTPUTF8, EightBit: m.EightBit, Source: m.Source, HeldFor: m.HeldFor,
		DelayWarned: m.DelayWarned, Finished: m.Finished, MessageID: m.MessageID, Held: m.Held}
}

func (r *record) setData(d messageData) {
	m := &r.Message
	m.Sender, m.Size, m.Arrival, m.EnvID, m.Ret = d.Sender, d.Size, d.Arrival, d.EnvID, d.Ret
	m.SMTPUTF8, m.EightBit, m.Source, m.HeldFor = d.SMTPUTF8, d.EightBit, d.Source, d.HeldFor
	m.DelayWarned, m.Finished, m.MessageID, m.Held = d.DelayWarned, d.Finished, d.MessageID, d.Held
}

// status derives the message status (queue.StatusOf).
func (r *record) status() queue.Status { return queue.StatusOf(r.Recipients, r.Held, r.Owner != "") }

func (r *record) earliest() time.Time { return queue.EarliestAttempt(r.Recipients) }

func (r *record) isLeased(addr string) bool {
	for _, a := range r.Leased {
		if a == addr {
			return true
		}
	}
	return false
}

func (r *record) dueNow(now time.Time) { queue.MakeDueNow(r.Recipients, r.Leased, now) }

// requestNow is dueNow for an operator's retry or flush (queue.BringForward).
func (r *record) requestNow(now time.Time) { queue.BringForward(r.Recipients, r.Leased, now) }

// unlease turns a dead lease into recipients due at now; the attempt Lease
// recorded stays, interrupted.
func (r *record) unlease(now time.Time) {
	for i := range r.Recipients {
		rc := &r.Recipients[i]
		if r.isLeased(rc.Address) && !rc.State.Done() {
			rc.State, rc.NextAttempt = queue.Deferred, now
		}
	}
	r.Owner, r.Leased = "", nil
}

func (r *record) public() *queue.Message {
	m := r.Message
	m.Status = r.status()
	m.NextAttempt = r.earliest()
	m.Recipients = append([]queue.Recipient(nil), r.Recipients...)
	m.Attempts = append([]queue.Attempt(nil), r.Attempts...)
	return &m
}

func nsOrNil(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ns := t.UnixNano()
	return &ns
}

func timeOf(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns)
}

// loadMany reads the messages ids (those that exist), locking them FOR
// UPDATE when lock is set, in one query: the recipients and (when
// attempts is set) the attempt records come along as arrays.
func loadMany(ctx context.Context, tx pgx.Tx, ids []string, lock, attempts bool) (map[queue.ID]*record, error) {
	q := `SELECT m.id, m.lease_owner, m.epoch, m.leased, m.chunks, m.held_at, m.data,
		ARRAY(SELECT r.data::text FROM recipients r WHERE r.message_id = m.id ORDER BY r.idx),
		CASE WHEN $2 THEN ARRAY(SELECT a.data::text FROM attempts a WHERE a.message_id = m.id ORDER BY a.idx) END
		FROM messages m WHERE m.id = ANY($1) ORDER BY m.id`
	if lock {
		q += " FOR UPDATE OF m"
	}
	rows, err := tx.Query(ctx, q, ids, attempts)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[queue.ID]*record{}
	for rows.Next() {
		r := &record{}
		var owner *string
		var heldAt *int64
		var data []byte
		var epoch int64
		var rcpts, atts []string
		if err := rows.Scan(&r.ID, &owner, &epoch, &r.Leased, &r.Chunks, &heldAt, &data, &rcpts, &atts); err != nil {
			return nil, err
		}
		var md messageData
		if err := json.Unmarshal(data, &md); err != nil {
			return nil, fmt.Errorf("message %s: undecodable data: %w", r.ID, err)
		}
		r.setData(md)
		if owner != nil {
			r.Owner = *owner
		}
		r.Epoch, r.HeldAt = uint64(epoch), timeOf(heldAt)
		r.Recipients = make([]queue.Recipient, len(rcpts))
		for i, v := range rcpts {
			if err := json.Unmarshal([]byte(v), &r.Recipients[i]); err != nil {
				return nil, fmt.Errorf("message %s: undecodable recipient: %w", r.ID, err)
			}
		}
		r.Attempts = make([]queue.Attempt, len(atts))
		for i, v := range atts {
			if err := json.Unmarshal([]byte(v), &r.Attempts[i]); err != nil {
				return nil, fmt.Errorf("message %s: undecodable attempt: %w", r.ID, err)
			}
		}
		r.attemptsFrom = len(r.Attempts)
		out[r.ID] = r
	}
	return out, rows.Err()
}

// load reads one message, locked; ErrNotFound when there is none.
func load(ctx context.Context, tx pgx.Tx, id queue.ID, attempts bool) (*record, error) {
	rs, err := loadMany(ctx, tx, []string{string(id)}, true, attempts)
	if err != nil {
		return nil, err
	}
	r := rs[id]
	if r == nil {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	return r, nil
}

// save queues the writes that store r in b: the message row with its
// schedule column (set iff queued or deferred), the recipients, the
// attempts from attemptsFrom on.
func (s *Store) save(b *pgx.Batch, r *record) error {
	st := r.status()
	var sched *int64
	if st == queue.StatusQueued || st == queue.StatusDeferred {
		ns := max(r.earliest().UnixNano(), 1)
		sched = &ns
	}
	data, err := json.Marshal(r.data())
	if err != nil {
		return err
	}
	var owner *string
	if r.Owner != "" {
		owner = &r.Owner
	}
	var finished *int64
	if st == queue.StatusDone {
		finished = nsOrNil(r.Finished)
	}
	leased := r.Leased
	if leased == nil {
		leased = []string{}
	}
	b.Queue(`UPDATE messages SET status = $2, sched_at = $3, finished = $4, held_at = $5, lease_owner = $6,
		lease_expiry = CASE WHEN $6::text IS NULL THEN NULL WHEN $7 THEN now() + make_interval(secs => $8) ELSE lease_expiry END,
		epoch = $9, leased = $10, data = $11 WHERE id = $1`,
		string(r.ID), string(st), sched, finished, nsOrNil(r.HeldAt), owner,
		r.renewLease, s.opts.LeaseTime.Seconds(), int64(r.Epoch), leased, data)
	idx, addrs, states, next, rdata, err := recipientRows(r)
	if err != nil {
		return err
	}
	if r.rewriteRcpts {
		b.Queue("DELETE FROM recipients WHERE message_id = $1", string(r.ID))
		b.Queue(`INSERT INTO recipients (message_id, idx, address, state, next_attempt, data)
			SELECT $1, u.idx, u.address, u.state, u.next, u.data::jsonb FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(idx, address, state, next, data)`,
			string(r.ID), idx, addrs, states, next, rdata)
	} else {
		b.Queue(`UPDATE recipients AS r SET state = u.state, next_attempt = u.next, data = u.data::jsonb
			FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[]) AS u(idx, state, next, data)
			WHERE r.message_id = $1 AND r.idx = u.idx`,
			string(r.ID), idx, states, next, rdata)
	}
	if r.attemptsFrom < len(r.Attempts) {
		// Attempts only grow (RecordAttempts replaces one record by one or
		// more), so an upsert from attemptsFrom on is the whole change.
		var aidx []int32
		var adata []string
		for i := r.attemptsFrom; i < len(r.Attempts); i++ {
			v, err := json.Marshal(r.Attempts[i])
			if err != nil {
				return err
			}
			aidx, adata = append(aidx, int32(i)), append(adata, string(v))
		}
		b.Queue(`INSERT INTO attempts (message_id, idx, data) SELECT $1, u.idx, u.data::jsonb FROM unnest($2::int[], $3::text[]) AS u(idx, data)
			ON CONFLICT (message_id, idx) DO UPDATE SET data = excluded.data`,
			string(r.ID), aidx, adata)
	}
	return nil
}

func recipientRows(r *record) (idx []int32, addrs, states []string, next []*int64, data []string, err error) {
	for i, rc := range r.Recipients {
		v, err := json.Marshal(rc)
		if err != nil {
			return nil, nil, nil, nil, nil, err
		}
		idx = append(idx, int32(i))
		addrs = append(addrs, rc.Address)
		states = append(states, string(rc.State))
		if rc.State.Done() {
			next = append(next, nil)
		} else {
			next = append(next, nsOrNil(rc.NextAttempt))
		}
		data = append(data, string(v))
	}
	return
}

// insert queues the writes of new messages (their body chunks excepted):
// one multi-row statement per table, however many messages, so a batch of
// concurrent enqueues costs the database two statements.
func (s *Store) insert(b *pgx.Batch, rs []*record, seqs []int64) error {
	var (
		ids, statuses, datas         []string
		mseqs, scheds, arrivals      []int64
		chunks                       []int32
		rids, raddrs, rstates, rdata []string
		ridx                         []int32
		rnext                        []*int64
	)
	for i, r := range rs {
		data, err := json.Marshal(r.data())
		if err != nil {
			return err
		}
		ids, statuses, datas = append(ids, string(r.ID)), append(statuses, string(r.status())), append(datas, string(data))
		mseqs, scheds, arrivals = append(mseqs, seqs[i]), append(scheds, max(r.earliest().UnixNano(), 1)), append(arrivals, r.Arrival.UnixNano())
		chunks = append(chunks, int32(r.Chunks))
		idx, addrs, states, next, rd, err := recipientRows(r)
		if err != nil {
			return err
		}
		for range idx {
			rids = append(rids, string(r.ID))
		}
		ridx, raddrs, rstates, rnext, rdata = append(ridx, idx...), append(raddrs, addrs...), append(rstates, states...), append(rnext, next...), append(rdata, rd...)
	}
	b.Queue(`INSERT INTO messages (id, seq, status, sched_at, arrival, chunks, data)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::text[]::jsonb[])`,
		ids, mseqs, statuses, scheds, arrivals, chunks, datas)
	b.Queue(`INSERT INTO recipients (message_id, idx, address, state, next_attempt, data)
		SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[]::jsonb[])`,
		rids, ridx, raddrs, rstates, rnext, rdata)
	return nil
}

// remove queues the deletion of a message with its body (recipients and
// attempts go by ON DELETE CASCADE).
func remove(b *pgx.Batch, id queue.ID) {
	b.Queue("DELETE FROM body_chunks WHERE message_id = $1", string(id))
	b.Queue("DELETE FROM messages WHERE id = $1", string(id))
}

// send runs the queued writes of b in tx.
func send(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// unleaseOne takes back a dead lease (this node restarting, or another
// node's lease expired): its attempt stays recorded as interrupted, its
// recipients become due now, on any node.
func (s *Store) unleaseOne(tx pgx.Tx, d *delta, id queue.ID) error {
	r, err := load(s.ctx, tx, id, false)
	if err != nil {
		return err
	}
	if r.Owner == "" {
		return nil
	}
	r.unlease(s.now())
	d.due = true
	b := &pgx.Batch{}
	if err := s.save(b, r); err != nil {
		return err
	}
	return send(s.ctx, tx, b)
}
