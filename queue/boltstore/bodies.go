package boltstore

// Where a body's chunks live. bbolt keeps at least two entries in every
// leaf page (and never splits a leaf of four or fewer), so when all chunks
// shared the bodies bucket each 64 KiB chunk shared its leaf with chunks
// of neighbouring messages: every commit that added or dropped a body
// copied the neighbours' chunks out of the mapping into new pages and
// wrote them again. At 100 KiB per message that copying was bbolt's
// largest cost, and its reads through the mapping filled the resident set
// fast enough to trim every few messages (issue 13). So each message's
// chunks go in a bucket of their own inside bodies, keyed by its id: a
// new body is written once, in its own pages, and a dropped one frees
// them without touching any other body. A body of one chunk stays
// directly in bodies (putBody), as every body did before.
//
//	bodies  id → bucket: id ‖ uint32 chunk number → up to bodyChunkSize bytes
//	        id ‖ uint32 0 → the whole body, when it is one chunk
//
// The chunk keys keep the id, so the salvage scan (salvage_scan.go), which
// reads leaf pages without the tree above them, still knows whose chunk it
// found. Every reader looks in both places (a message has its chunks in
// one or the other, never both); files written before per-message buckets
// hold all their bodies directly in bodies.

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bodyBucket is the bucket holding id's chunks: its own bucket, or for a
// body written before per-message buckets, bodies itself.
func bodyBucket(tx *bolt.Tx, id ID) *bolt.Bucket {
	bodies := tx.Bucket(bucketBodies)
	if b := bodies.Bucket([]byte(id)); b != nil {
		return b
	}
	return bodies
}

// bodyChunk is chunk n of id's body, nil if it is not stored. Delivery
// calls it for every chunk it sends, so the key is built without an
// allocation.
func bodyChunk(tx *bolt.Tx, id ID, n int) []byte {
	var key [idLen + 4]byte
	copy(key[:], id)
	binary.BigEndian.PutUint32(key[idLen:], uint32(n))
	bodies := tx.Bucket(bucketBodies)
	if b := bodies.Bucket(key[:idLen]); b != nil {
		return b.Get(key[:])
	}
	return bodies.Get(key[:])
}

// putBody stores a whole body given at once. One chunk (a body of up to
// bodyChunkSize bytes, most mail) goes straight into bodies under its
// chunk key: a bucket of its own would cost a page for the bucket beside
// the chunk's, and a queue of 100,000 4 KiB messages took 1046 MB instead
// of 834 (issue 13). What leaf-sharing costs is copying a neighbour's
// chunk when a body is added or dropped, which is small for small chunks;
// bodies of several chunks get their own bucket (putChunks).
func putBody(tx *bolt.Tx, id ID, chunks [][]byte) error {
	if len(chunks) != 1 {
		return putChunks(tx, id, 0, chunks)
	}
	if err := tx.Bucket(bucketBodies).Put(chunkKey(id, 0), chunks[0]); err != nil {
		return fmt.Errorf("queue: store body of %s: %w", id, err)
	}
	return nil
}

// putChunks stores chunks as id's chunks first, first+1, ... in id's own
// bucket, creating it with the first.
func putChunks(tx *bolt.Tx, id ID, first int, chunks [][]byte) error {
	if len(chunks) == 0 {
		return nil
	}
	b, err := tx.Bucket(bucketBodies).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return fmt.Errorf("queue: store body of %s: %w", id, err)
	}
	// Chunks arrive in order at the end of the bucket: filled leaves
	// split there stay full instead of half empty.
	b.FillPercent = 1
	for n, c := range chunks {
		if err := b.Put(chunkKey(id, uint32(first+n)), c); err != nil {
			return fmt.Errorf("queue: store body of %s: %w", id, err)
		}
	}
	return nil
}

// deleteBody removes id's body wherever it is stored.
func deleteBody(tx *bolt.Tx, id ID) error {
	bodies := tx.Bucket(bucketBodies)
	if bodies.Bucket([]byte(id)) != nil {
		if err := bodies.DeleteBucket([]byte(id)); err != nil {
			return fmt.Errorf("queue: delete body of %s: %w", id, err)
		}
	}
	c := bodies.Cursor()
	prefix := []byte(id)
	for k, _ := c.Seek(prefix); k != nil && len(k) == len(prefix)+4 && string(k[:len(prefix)]) == string(id); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("queue: delete body of %s: %w", id, err)
		}
	}
	return nil
}
