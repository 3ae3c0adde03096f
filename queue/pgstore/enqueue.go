package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mailq/esmtp"
	"mailq/queue"
)

// chunkSize is one body_chunks row: bounded memory per reader and writer,
// well under the 1 MiB a row the schema allows.
const chunkSize = 256 << 10

// Enqueue stores a message and returns its id once the transaction holding
// it has committed (synchronous_commit on: flushed to disk). A body that
// fits in one chunk goes through the batching writer, sharing a commit
// with concurrent enqueues; a larger one streams chunk by chunk into its
// own transaction, committed with the envelope at the end, so memory does
// not grow with its size and nothing is visible before the commit.
func (s *Store) Enqueue(env queue.Envelope, body io.Reader) (queue.ID, error) {
	if len(env.Recipients) == 0 {
		return "", errors.New("queue: enqueue: the envelope has no recipients; give at least one")
	}
	for i, rc := range env.Recipients {
		if rc.Address == "" {
			return "", fmt.Errorf("queue: enqueue: recipient %d has an empty address", i+1)
		}
	}
	if s.closed.Load() {
		return "", queue.ErrClosed
	}
	buf := chunkPool.Get().(*[chunkSize]byte)
	defer chunkPool.Put(buf)
	cr := &chunkReader{r: body, buf: buf[:]}
	first, err := cr.next()
	if err != nil {
		return "", readFailed(err)
	}
	if env.MessageID == "" && s.opts.MessageIDOf != nil && len(first) > 0 {
		env.MessageID = s.opts.MessageIDOf(first)
	}
	if cr.eof {
		return s.writer.enqueue(env, first, cr)
	}
	return s.enqueueStreamed(env, first, cr)
}

func readFailed(err error) error {
	return fmt.Errorf("queue: enqueue: reading the message body failed, nothing was stored: %w", err)
}

// newRecord is the record of a message just arrived.
func (s *Store) newRecord(env queue.Envelope, id queue.ID, chunks int, cr *chunkReader) *record {
	now := s.now()
	r := &record{Message: queue.Message{
		ID: id, Sender: env.Sender, Size: cr.size, Arrival: now, EnvID: env.EnvID, Ret: env.Ret,
		SMTPUTF8: env.SMTPUTF8 || cr.headers.NonASCII(), EightBit: cr.eightBit, Source: env.Source,
		MessageID: env.MessageID,
	}, Chunks: chunks}
	for _, rc := range env.Recipients {
		r.Recipients = append(r.Recipients, queue.Recipient{
			Address: rc.Address, Notify: rc.Notify, ORCPT: rc.ORCPT, State: queue.Pending, NextAttempt: now,
		})
	}
	return r
}

func formatID(seq int64) queue.ID { return queue.ID(fmt.Sprintf("%016x", seq)) }

// enqueueStreamed stores a large body chunk by chunk as it arrives, each
// chunk in its own statement under a pending_bodies entry (no transaction
// waits for the client), then commits the message row, which takes the
// entry away, in one pipelined transaction. Until then nothing is visible;
// if the body fails, its chunks are deleted; if the node dies meanwhile,
// its next Open (or anyone's Purge a day later) deletes them.
func (s *Store) enqueueStreamed(env queue.Envelope, first []byte, cr *chunkReader) (_ queue.ID, err error) {
	seqs, err := s.writer.ids.take(s, 1)
	if err != nil {
		return "", fmt.Errorf("queue: enqueue: %w", err)
	}
	id := formatID(seqs[0])
	if _, err := s.pool.Exec(s.ctx, "INSERT INTO pending_bodies (message_id, node, started) VALUES ($1, $2, $3)",
		string(id), s.opts.Node, time.Now().UnixNano()); err != nil {
		return "", fmt.Errorf("queue: enqueue: %w", err)
	}
	defer func() {
		if err != nil {
			s.dropPending(id)
		}
	}()
	n := 0
	for chunk := first; ; {
		if len(chunk) > 0 {
			if _, err := s.pool.Exec(s.ctx, "INSERT INTO body_chunks (message_id, n, data) VALUES ($1, $2, $3)", string(id), n, chunk); err != nil {
				return "", fmt.Errorf("queue: enqueue: store a body chunk: %w", err)
			}
			n++
		}
		if cr.eof {
			break
		}
		if chunk, err = cr.next(); err != nil {
			return "", readFailed(err)
		}
	}
	r := s.newRecord(env, id, n, cr)
	b := &pgx.Batch{}
	// The pending entry must still be there: if this node was taken for
	// restarted meanwhile, its chunks may be gone. The division by zero
	// fails the pipeline's transaction when the entry is not there.
	b.Queue(`WITH d AS (DELETE FROM pending_bodies WHERE message_id = $1 RETURNING 1)
		SELECT 1 / count(*) FROM d`, string(id))
	if err := s.insert(b, []*record{r}, seqs); err != nil {
		return "", err
	}
	d := &delta{due: true}
	s.journal(b, d, queue.Change{Kind: queue.ChangeArrived, Time: r.Arrival, Message: r.public()})
	d.queueNotify(b)
	if err := s.pool.SendBatch(s.ctx, b).Close(); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "22012" { // division_by_zero
			return "", errors.New("queue: enqueue: the body's chunks were dropped as an upload cut off by a restart of this node (node names must be unique); nothing was stored")
		}
		return "", fmt.Errorf("queue: enqueue: %w", err)
	}
	s.apply(d)
	return id, nil
}

// dropPending deletes the chunks of a body that will not become a message.
func (s *Store) dropPending(id queue.ID) {
	b := &pgx.Batch{}
	b.Queue("DELETE FROM body_chunks WHERE message_id = $1", string(id))
	b.Queue("DELETE FROM pending_bodies WHERE message_id = $1", string(id))
	s.pool.SendBatch(context.Background(), b).Close()
}

// dropDeadPending deletes bodies whose upload cannot finish: any older
// than a day and, at Open (ownToo), this node's: it is starting, so they
// were cut off.
func (s *Store) dropDeadPending(ctx context.Context, ownToo bool) error {
	b := &pgx.Batch{}
	dead := "(node = $1 AND $3) OR started < $2"
	args := []any{s.opts.Node, time.Now().Add(-24 * time.Hour).UnixNano(), ownToo}
	b.Queue("DELETE FROM body_chunks WHERE message_id IN (SELECT message_id FROM pending_bodies WHERE "+dead+")", args...)
	b.Queue("DELETE FROM pending_bodies WHERE "+dead, args...)
	return s.pool.SendBatch(ctx, b).Close()
}

// chunkPool recycles chunk buffers between enqueues (a fresh 256 KiB
// buffer per message would be most of a small enqueue's cost).
var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// chunkReader reads a body chunkSize bytes at a time into one buffer and
// notes its size, whether it has 8-bit bytes (BODY=8BITMIME, RFC 6152) and
// whether its header section does (SMTPUTF8, RFC 6531 §3.4).
type chunkReader struct {
	r        io.Reader
	buf      []byte
	size     int64
	eightBit bool
	eof      bool
	headers  esmtp.HeaderScan
}

// next returns the next chunk, valid until the following call. Only io.EOF
// ends a body: any other error (io.ErrUnexpectedEOF included) fails it.
func (c *chunkReader) next() ([]byte, error) {
	k := 0
	for k < len(c.buf) && !c.eof {
		n, err := c.r.Read(c.buf[k:])
		k += n
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			return nil, err
		}
	}
	p := c.buf[:k]
	c.size += int64(k)
	for _, b := range p {
		if b >= 0x80 {
			c.eightBit = true
			break
		}
	}
	c.headers.Write(p)
	return p, nil
}

// Body streams the stored body one chunk per query, so a reader never
// holds more than a chunk nor a transaction open.
func (s *Store) Body(id queue.ID) (io.ReadCloser, error) {
	if s.closed.Load() {
		return nil, queue.ErrClosed
	}
	var chunks int
	err := s.pool.QueryRow(s.ctx, "SELECT chunks FROM messages WHERE id = $1", string(id)).Scan(&chunks)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: body of %s: %w", id, err)
	}
	return &bodyReader{s: s, id: id, chunks: chunks}, nil
}

type bodyReader struct {
	s      *Store
	id     queue.ID
	chunks int
	next   int
	buf    []byte
	pos    int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.next >= b.chunks {
			return 0, io.EOF
		}
		if err := b.load(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.pos += int64(n)
	return n, nil
}

func (b *bodyReader) load() error {
	err := b.s.pool.QueryRow(b.s.ctx, "SELECT data FROM body_chunks WHERE message_id = $1 AND n = $2", string(b.id), b.next).Scan(&b.buf)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("queue: body of %s: chunk %d is gone (message deleted or purged while being read)", b.id, b.next)
	}
	if err != nil {
		return fmt.Errorf("queue: body of %s: %w", b.id, err)
	}
	b.next++
	return nil
}

// Seek rewinds the body (a second transaction on one connection, RFC 5321
// §4.5.3.1.10); every chunk but the last is chunkSize long.
func (b *bodyReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	default:
		return 0, fmt.Errorf("queue: body of %s: seek from the end is not supported", b.id)
	}
	if offset < 0 {
		return 0, fmt.Errorf("queue: body of %s: negative seek", b.id)
	}
	if offset == b.pos {
		return offset, nil
	}
	b.next, b.buf, b.pos = int(offset/chunkSize), nil, offset
	if skip := int(offset % chunkSize); skip > 0 {
		if err := b.load(); err != nil {
			return 0, err
		}
		b.buf = b.buf[min(skip, len(b.buf)):]
	}
	return offset, nil
}

func (b *bodyReader) Close() error {
	b.buf, b.next = nil, b.chunks
	return nil
}

// writer batches small enqueues: concurrent Enqueue calls share one
// transaction and so one commit (one WAL flush), as bbolt's group commit
// shares one fsync. Two goroutines take turns, so one batch is built while
// the other commits.
type writer struct {
	s    *Store
	reqs chan *enqueueReq
	quit chan struct{}
	wg   sync.WaitGroup
	ids  idBlock
}

// idBlock hands out message sequence numbers from blocks fetched from the
// database sequence, in the order batches form (so ids follow arrival on
// a node; across nodes they interleave). A block left unused at Close
// leaves a gap: ids are never reused, not necessarily dense.
type idBlock struct {
	mu   sync.Mutex
	next []int64
}

const idBlockSize = 512

func (b *idBlock) take(s *Store, n int) ([]int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.next) < n {
		rows, err := s.pool.Query(s.ctx, "SELECT nextval('message_seq') FROM generate_series(1, $1)", max(n, idBlockSize))
		if err != nil {
			return nil, err
		}
		more, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, err
		}
		b.next = append(b.next, more...)
	}
	out := b.next[:n:n]
	b.next = b.next[n:]
	return out, nil
}

type enqueueReq struct {
	env   queue.Envelope
	body  []byte // the whole body, one chunk (copied: the reader's buffer is reused)
	size  int64
	eight bool
	utf8  bool
	id    queue.ID
	err   error
	ready chan struct{}
}

const (
	writerBatch   = 256
	writerWorkers = 2
)

func startWriter(s *Store) *writer {
	w := &writer{s: s, reqs: make(chan *enqueueReq), quit: make(chan struct{})}
	for range writerWorkers {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

// stop lets the batches under way commit and refuses new ones.
func (w *writer) stop() {
	close(w.quit)
	w.wg.Wait()
}

func (w *writer) enqueue(env queue.Envelope, body []byte, cr *chunkReader) (queue.ID, error) {
	req := &enqueueReq{env: env, body: append([]byte(nil), body...), size: cr.size, eight: cr.eightBit,
		utf8: cr.headers.NonASCII(), ready: make(chan struct{})}
	select {
	case w.reqs <- req:
	case <-w.quit:
		return "", queue.ErrClosed
	}
	<-req.ready
	return req.id, req.err
}

func (w *writer) run() {
	defer w.wg.Done()
	for {
		var batch []*enqueueReq
		select {
		case <-w.quit:
			return
		case r := <-w.reqs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < writerBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		if err := w.commit(batch); err != nil && len(batch) > 1 {
			// One bad message must not fail the others: each alone.
			for _, r := range batch {
				r.err = w.commit([]*enqueueReq{r})
			}
		} else {
			for _, r := range batch {
				r.err = err
			}
		}
		for _, r := range batch {
			if r.err != nil {
				r.id, r.err = "", fmt.Errorf("queue: enqueue: %w", r.err)
			}
			close(r.ready)
		}
	}
}

// commit stores a batch of messages in one round trip (and now and then
// one more for a block of ids): one pipelined batch of
// multi-row inserts, journal and NOTIFY, which PostgreSQL runs as one
// implicit transaction (the pipeline has a single Sync), committed before
// the batch's results come back.
func (w *writer) commit(batch []*enqueueReq) error {
	s := w.s
	seqs, err := w.ids.take(s, len(batch))
	if err != nil {
		return err
	}
	d := &delta{due: true}
	b := &pgx.Batch{}
	var changes []queue.Change
	recs := make([]*record, len(batch))
	var bodyIDs []string
	var bodies [][]byte
	for i, req := range batch {
		req.id = formatID(seqs[i])
		cr := &chunkReader{size: req.size, eightBit: req.eight}
		r := s.newRecord(req.env, req.id, 0, cr)
		r.SMTPUTF8 = r.SMTPUTF8 || req.utf8
		if len(req.body) > 0 {
			r.Chunks = 1
			bodyIDs, bodies = append(bodyIDs, string(req.id)), append(bodies, req.body)
		}
		recs[i] = r
		changes = append(changes, queue.Change{Kind: queue.ChangeArrived, Time: r.Arrival, Message: r.public()})
	}
	if len(bodies) > 0 {
		b.Queue("INSERT INTO body_chunks (message_id, n, data) SELECT id, 0, data FROM unnest($1::text[], $2::bytea[]) AS u(id, data)", bodyIDs, bodies)
	}
	if err := s.insert(b, recs, seqs); err != nil {
		return err
	}
	s.journal(b, d, changes...)
	d.queueNotify(b)
	if err := s.pool.SendBatch(s.ctx, b).Close(); err != nil {
		return err
	}
	s.apply(d)
	return nil
}
