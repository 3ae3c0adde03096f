package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"mailq/esmtp"
)

// bodyChunkSize is the size of one stored body piece: large enough that a
// 35 MiB message is ~560 keys, small enough that no read or write needs a
// big contiguous buffer.
const bodyChunkSize = 64 << 10

// Enqueue stores a message and returns its id once the transaction holding
// it has been committed and fsync'd. The body is read in chunks before the
// transaction starts, so a slow submitter never holds up other writers.
func (s *Store) Enqueue(env Envelope, body io.Reader) (ID, error) {
	if len(env.Recipients) == 0 {
		return "", errors.New("queue: enqueue: the envelope has no recipients; give at least one")
	}
	for i, rc := range env.Recipients {
		if rc.Address == "" {
			return "", fmt.Errorf("queue: enqueue: recipient %d has an empty address", i+1)
		}
	}
	// A raw 8-bit header section needs SMTPUTF8 like a UTF-8 address does
	// (RFC 6531 §3.4): decided here, where the body streams by once.
	var headers esmtp.HeaderScan
	chunks, size, eightBit, err := readChunks(io.TeeReader(body, &headers))
	if err != nil {
		return "", fmt.Errorf("queue: enqueue: reading the message body failed, nothing was stored: %w", err)
	}
	if env.MessageID == "" && s.opts.MessageIDOf != nil && len(chunks) > 0 {
		env.MessageID = s.opts.MessageIDOf(chunks[0])
	}
	var id ID
	err = s.write(size, func(tx *bolt.Tx, d *delta) error {
		msgs := tx.Bucket(bucketMsgs)
		seq, err := msgs.NextSequence()
		if err != nil {
			return err
		}
		id = formatID(seq)
		now := s.now()
		r := &record{Message: Message{
			ID:       id,
			Sender:   env.Sender,
			Size:     size,
			Arrival:  now,
			EnvID:    env.EnvID,
			Ret:      env.Ret,
			SMTPUTF8: env.SMTPUTF8 || headers.NonASCII(),
			EightBit: eightBit,
			Source:   env.Source,
		}, Chunks: len(chunks)}
		r.MessageID = env.MessageID
		for _, rc := range env.Recipients {
			r.Recipients = append(r.Recipients, Recipient{
				Address: rc.Address, Notify: rc.Notify, ORCPT: rc.ORCPT,
				State: Pending, NextAttempt: now,
			})
		}
		bodies := tx.Bucket(bucketBodies)
		for n, c := range chunks {
			if err := bodies.Put(chunkKey(id, uint32(n)), c); err != nil {
				return fmt.Errorf("queue: store body of %s: %w", id, err)
			}
		}
		var arrival [8]byte
		binary.BigEndian.PutUint64(arrival[:], uint64(now.UnixNano()))
		if err := tx.Bucket(bucketLive).Put([]byte(id), arrival[:]); err != nil {
			return err
		}
		d.signal = true
		if err := save(tx, r, d); err != nil {
			return err
		}
		return s.journal(tx, d, Change{Kind: ChangeArrived, Time: now, Message: r.public()})
	})
	if err != nil {
		return "", fmt.Errorf("queue: enqueue: %w", err)
	}
	return id, nil
}

// readChunks reads the body in bodyChunkSize pieces and notes whether it
// has 8-bit bytes, so delivery knows whether to ask for BODY=8BITMIME
// (RFC 6152) without reading the body twice.
func readChunks(body io.Reader) (chunks [][]byte, size int64, eightBit bool, err error) {
	for {
		buf := make([]byte, bodyChunkSize)
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			chunks = append(chunks, buf[:n:n])
			size += int64(n)
			eightBit = eightBit || hasEightBit(buf[:n])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return chunks, size, eightBit, nil
		}
		if err != nil {
			return nil, 0, false, err
		}
	}
}

func hasEightBit(p []byte) bool {
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
		v := tx.Bucket(bucketBodies).Get(chunkKey(b.id, uint32(b.next)))
		if v == nil {
			return fmt.Errorf("queue: body of %s: chunk %d is gone (message deleted or purged while being read)", b.id, b.next)
		}
		b.buf = append(b.buf[:0], v...) // copy: v is only valid inside the transaction
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

func (b *bodyReader) Close() error {
	b.buf = nil
	b.next = b.chunks
	return nil
}
