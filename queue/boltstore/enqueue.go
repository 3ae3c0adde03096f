package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	bolt "go.etcd.io/bbolt"

	"mailq/esmtp"
)

// bodyChunkSize is the size of one stored body piece: large enough that a
// 35 MiB message is ~560 keys, small enough that no read or write needs a
// big contiguous buffer.
const bodyChunkSize = 64 << 10

// Enqueue stores a message and returns its id once the transaction holding
// it has been committed and fsync'd.
//
// The body is a stream, read once to EOF and never held whole: a body of
// up to inlineBodyMax bytes is read first and stored with its envelope in
// one transaction; a larger one is written in batches of pendingBatch bytes
// into the pending area as it arrives and committed together with its
// envelope at the end (pending.go). A read error from body stores nothing
// and is returned wrapped. A slow submitter never holds up other writers:
// no transaction waits for the body. Any other store (e.g. PostgreSQL)
// keeps the same contract: bounded memory whatever the message size, and
// nothing visible until the final commit.
func (s *Store) Enqueue(env Envelope, body io.Reader) (ID, error) {
	if len(env.Recipients) == 0 {
		return "", errors.New("queue: enqueue: the envelope has no recipients; give at least one")
	}
	for i, rc := range env.Recipients {
		if rc.Address == "" {
			return "", fmt.Errorf("queue: enqueue: recipient %d has an empty address", i+1)
		}
	}
	cr := &chunkReader{r: body}
	defer cr.release()
	chunks, err := cr.read(inlineBodyMax)
	if err != nil {
		return "", readFailed(err)
	}
	if env.MessageID == "" && s.opts.MessageIDOf != nil && len(chunks) > 0 {
		env.MessageID = s.opts.MessageIDOf(chunks[0])
	}
	if cr.eof {
		return s.commitMessage(env, "", len(chunks), cr, chunks)
	}
	id, err := s.beginPending(chunks, cr.bytes(chunks))
	if err != nil {
		return "", fmt.Errorf("queue: enqueue: %w", err)
	}
	stored := len(chunks)
	cr.keep(pendingBatch / bodyChunkSize)
	for !cr.eof {
		if chunks, err = cr.read(pendingBatch); err != nil {
			s.abandonPending(id)
			return "", readFailed(err)
		}
		if err := s.appendPending(id, stored, chunks, cr.bytes(chunks)); err != nil {
			s.abandonPending(id)
			return "", fmt.Errorf("queue: enqueue: %w", err)
		}
		stored += len(chunks)
	}
	id, err = s.commitMessage(env, id, stored, cr, nil)
	if err != nil {
		s.abandonPending(id)
	}
	return id, err
}

func readFailed(err error) error {
	return fmt.Errorf("queue: enqueue: reading the message body failed, nothing was stored: %w", err)
}

// commitMessage writes the record of a message whose body is complete:
// either the inline chunks given here (id "" takes a new id), or the
// pending body of id, which stops being pending in the same transaction.
func (s *Store) commitMessage(env Envelope, pendingID ID, chunks int, cr *chunkReader, inline [][]byte) (ID, error) {
	var id ID
	err := s.write(cr.bytes(inline), func(tx *bolt.Tx, d *delta) error {
		id = pendingID
		if id == "" {
			seq, err := tx.Bucket(bucketMsgs).NextSequence()
			if err != nil {
				return err
			}
			id = formatID(seq)
			if err := putBody(tx, id, inline); err != nil {
				return err
			}
		} else if err := tx.Bucket(bucketPending).Delete([]byte(id)); err != nil {
			return err
		}
		now := s.now()
		r := &record{Message: Message{
			ID:       id,
			Sender:   env.Sender,
			Size:     cr.size,
			Arrival:  now,
			EnvID:    env.EnvID,
			Ret:      env.Ret,
			SMTPUTF8: env.SMTPUTF8 || cr.headers.NonASCII(),
			EightBit: cr.eightBit,
			Source:   env.Source,
		}, Chunks: chunks}
		r.MessageID = env.MessageID
		for _, rc := range env.Recipients {
			r.Recipients = append(r.Recipients, Recipient{
				Address: rc.Address, Notify: rc.Notify, ORCPT: rc.ORCPT,
				State: Pending, NextAttempt: now,
			})
		}
		d.signal = true // save puts it in the live index
		if err := save(tx, r, d); err != nil {
			return err
		}
		return s.journal(tx, d, Change{Kind: ChangeArrived, Time: now, Message: r.public()})
	})
	if err != nil {
		return pendingID, fmt.Errorf("queue: enqueue: %w", err)
	}
	return id, nil
}

// chunkPool recycles body chunk buffers between enqueues: bbolt copies a
// value into its pages during the commit, so a buffer is free again once
// the write that carried it has returned.
var chunkPool = sync.Pool{New: func() any { return new([bodyChunkSize]byte) }}

// chunkReader reads a body in bodyChunkSize pieces into reused buffers and
// notes its size and whether it has 8-bit bytes, so delivery knows whether
// to ask for BODY=8BITMIME (RFC 6152) without reading the body twice.
type chunkReader struct {
	r        io.Reader
	bufs     []*[bodyChunkSize]byte
	size     int64
	eightBit bool
	eof      bool
	// A raw 8-bit header section needs SMTPUTF8 like a UTF-8 address does
	// (RFC 6531 §3.4): decided here, where the body streams by once.
	headers esmtp.HeaderScan
}

// read returns the next chunks, at most max bytes in all, in buffers that
// the next call reuses.
func (c *chunkReader) read(max int) ([][]byte, error) {
	var chunks [][]byte
	for n := 0; n < max/bodyChunkSize && !c.eof; n++ {
		if n == len(c.bufs) {
			c.bufs = append(c.bufs, chunkPool.Get().(*[bodyChunkSize]byte))
		}
		buf := c.bufs[n][:]
		k, err := c.fill(buf)
		if err != nil {
			return nil, err
		}
		if k > 0 {
			chunks = append(chunks, buf[:k:k])
			c.size += int64(k)
			c.eightBit = c.eightBit || hasEightBit(buf[:k])
			c.headers.Write(buf[:k])
		}
	}
	return chunks, nil
}

func (c *chunkReader) bytes(chunks [][]byte) int64 {
	var n int64
	for _, ch := range chunks {
		n += int64(len(ch))
	}
	return n
}

// fill reads until buf is full or the body ends. Only io.EOF ends a body:
// any other error, io.ErrUnexpectedEOF included (a client that went away
// mid-message), fails the enqueue. (io.ReadFull would turn a reader's
// io.ErrUnexpectedEOF into a short, "complete" body.)
func (c *chunkReader) fill(buf []byte) (int, error) {
	k := 0
	for k < len(buf) {
		n, err := c.r.Read(buf[k:])
		k += n
		if err == io.EOF {
			c.eof = true
			return k, nil
		}
		if err != nil {
			return k, err
		}
	}
	return k, nil
}

// keep hands back all but the first n buffers.
func (c *chunkReader) keep(n int) {
	for _, b := range c.bufs[min(n, len(c.bufs)):] {
		chunkPool.Put(b)
	}
	c.bufs = c.bufs[:min(n, len(c.bufs))]
}

func (c *chunkReader) release() {
	for _, b := range c.bufs {
		chunkPool.Put(b)
	}
	c.bufs = nil
}

// hasEightBit looks at 32 bytes per step (every body byte passes here once
// at enqueue; a byte loop was a visible part of a 100 KiB intake).
func hasEightBit(p []byte) bool {
	const high = 0x8080808080808080
	le := binary.LittleEndian
	for len(p) >= 32 {
		if (le.Uint64(p)|le.Uint64(p[8:])|le.Uint64(p[16:])|le.Uint64(p[24:]))&high != 0 {
			return true
		}
		p = p[32:]
	}
	for _, c := range p {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// Body streams the stored body of a live or retained message, one chunk
// per short read transaction, so a reader never holds the file.
func (s *Store) Body(id ID) (io.ReadCloser, error) {
	var chunks int
	err := s.view(func(tx *bolt.Tx) error {
		r, err := load(tx, id)
		if err != nil {
			return err
		}
		if r.BodyDropped {
			return fmt.Errorf("%w: %s", ErrBodyDropped, id)
		}
		chunks = r.Chunks
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &bodyReader{s: s, id: id, chunks: chunks}, nil
}

type bodyReader struct {
	s      *Store
	id     ID
	chunks int
	next   int    // the chunk load reads next
	buf    []byte // the unread rest of the current chunk
	pos    int64  // offset of the next byte Read returns
	// chunk holds the current chunk: one pooled buffer for the whole
	// body instead of a fresh 64 KiB allocation (and fresh pages the
	// kernel must clear) per chunk.
	chunk *[bodyChunkSize]byte
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

// load reads chunk b.next into b.buf and advances b.next.
func (b *bodyReader) load() error {
	if b.next >= b.chunks {
		return nil
	}
	err := b.s.view(func(tx *bolt.Tx) error {
		v := bodyChunk(tx, b.id, b.next)
		if v == nil {
			return fmt.Errorf("queue: body of %s: chunk %d is gone (message deleted or purged while being read)", b.id, b.next)
		}
		// Copy: v is only valid inside the transaction.
		if len(v) > bodyChunkSize { // not written by chunkReader; never expected
			b.buf = append([]byte(nil), v...)
			return nil
		}
		if b.chunk == nil {
			b.chunk = chunkPool.Get().(*[bodyChunkSize]byte)
		}
		b.buf = b.chunk[:copy(b.chunk[:], v)]
		return nil
	})
	if err != nil {
		return err
	}
	b.next++
	return nil
}

// Seek lets a sender rewind the body, e.g. to send the same message again
// in a further transaction on one connection when a server took only some
// recipients (RFC 5321 §4.5.3.1.10). Every chunk but the last is
// bodyChunkSize long, so an offset maps to a chunk directly.
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
	b.next, b.buf, b.pos = int(offset/bodyChunkSize), nil, offset
	if skip := int(offset % bodyChunkSize); skip > 0 {
		if err := b.load(); err != nil {
			return 0, err
		}
		b.buf = b.buf[min(skip, len(b.buf)):]
	}
	return offset, nil
}

// WriteTo hands w each chunk straight from the reader's buffer, so
// io.Copy (smtpproto's DATA and BDAT) needs no buffer and copy of its own.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(b.buf) == 0 {
			if b.next >= b.chunks {
				return total, nil
			}
			if err := b.load(); err != nil {
				return total, err
			}
		}
		n, err := w.Write(b.buf)
		b.buf = b.buf[n:]
		b.pos += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

func (b *bodyReader) Close() error {
	b.buf = nil
	b.next = b.chunks
	if b.chunk != nil {
		chunkPool.Put(b.chunk)
		b.chunk = nil
	}
	return nil
}
