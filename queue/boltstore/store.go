package boltstore

// Store layout (one bbolt file). Every bucket is keyed so that bbolt's byte
// order is the order we need:
//
//	msgs     id → JSON record (Message + lease/index bookkeeping)
//	bodies   id → a bucket of the body's chunks: id ‖ uint32 chunk number →
//	         up to bodyChunkSize bytes (older files: the chunks directly; bodies.go)
//	sched    uint64 next-attempt ns ‖ id → "" (only live, not held, not leased)
//	live     id → uint64 arrival ns (every message not done; gives OldestAge)
//	finished uint64 finished ns ‖ id → "" (done messages, for Purge)
//	leased   id → "" (messages with a lease in flight; what a crash leaves to recover)
//	damaged  id → JSON damagedRecord (set aside when found, kept for an operator)
//	pending  id → uint64 start ns (a large body being written; pending.go)
//	meta     "index_version" → indexVersion once the indexes above are kept by
//	         every commit; "counts" → JSON storedCounts, updated in each commit
//
// Every index is changed in the same transaction as the record it follows,
// so a crash can never leave them disagreeing and Open does not rebuild them.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"mailq/queue"
)

var (
	bucketMsgs     = []byte("msgs")
	bucketBodies   = []byte("bodies")
	bucketSched    = []byte("sched")
	bucketLive     = []byte("live")
	bucketFinished = []byte("finished")
	bucketDamaged  = []byte("damaged")
	bucketLeased   = []byte("leased")
	bucketMeta     = []byte("meta")
	allBuckets     = [][]byte{bucketMsgs, bucketBodies, bucketSched, bucketLive, bucketFinished, bucketDamaged, bucketLeased, bucketMeta}
)

// idLen is the fixed width of every ID, so that string order is numeric
// order and an id is never a prefix of another inside the bodies bucket.
const idLen = 16

// Store is the durable queue. All methods are safe for concurrent use.
type Store struct {
	db        *bolt.DB
	opts      Options
	changed   chan struct{}
	nextToken atomic.Uint64

	// mu guards closed; writers send on reqs while holding it for reading
	// so Close can close reqs safely.
	mu     sync.RWMutex
	closed bool
	reqs   chan *writeReq
	writer sync.WaitGroup

	countMu sync.Mutex
	counts  map[Status]int // messages by status, kept in step with commits
	damaged int

	events queue.Broadcast // fired after commits that stored events (journal.go)

	trimmer busyTrimmer // trims the file mapping while busy (busytrim.go)

	deliveredTotal atomic.Int64
	bouncedTotal   atomic.Int64
	deferredTotal  atomic.Int64
}

// Open opens (or creates) the queue file at path, creating its directory
// with mode 0700 and the file with mode 0600 when missing. It sets aside
// damaged records and makes anything left in flight by a crash due again.
// A damaged file is refused with a *DamagedError (damage.go).
func Open(path string, opts Options) (_ *Store, err error) {
	clean, err := precheck(path)
	if err != nil {
		return nil, err
	}
	var db *bolt.DB
	defer catchOpenPanic(path, &db, &err)()
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: create data directory %s: %w", dir, err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second,
		// The freelist is written with every commit, so Open reads it
		// instead of walking every page of the file to rebuild it: with
		// NoFreelistSync that walk was 97 % of Open and grew with the
		// queue (2.3 s at 100k messages; issue 18). A store written with
		// NoFreelistSync gets its freelist rebuilt once, then kept.
		FreelistType: bolt.FreelistMapType,
		// Fewer remaps while the file grows: a remap waits for every open
		// read transaction. Only address space; the file grows as written.
		InitialMmapSize: 64 << 20,
	})
	if err != nil {
		db = nil
		return nil, openError(path, err)
	}
	if err := checkFormat(db, path); err != nil {
		db.Close()
		return nil, err
	}
	// A new file's directory entry must be durable too, or an acknowledged
	// message could vanish with the file after a power loss.
	if err := syncDir(dir); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{
		db:      db,
		opts:    opts,
		changed: make(chan struct{}, 1),
		reqs:    make(chan *writeReq, 1024),
		counts:  map[Status]int{},
	}
	// Tokens from different opens must never collide within one process.
	s.nextToken.Store(uint64(time.Now().UnixNano()))
	damaged, err := s.recover(clean)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, d := range damaged {
		if opts.OnDamaged != nil {
			opts.OnDamaged(d.id, d.reason)
		}
	}
	if err := writeMarker(path); err != nil {
		db.Close()
		return nil, err
	}
	s.trim() // what the checks and any recovery touched (trim.go)
	s.writer.Add(1)
	go s.writeLoop()
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("queue: open data directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("queue: sync data directory %s: %w", dir, err)
	}
	return nil
}

// Close waits for pending writes, then closes the file. Later calls return
// ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	s.writer.Wait()
	readOnly, path := s.db.IsReadOnly(), s.db.Path()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	if !readOnly { // a reader vouches for nothing it did not close itself
		writeClean(path)
	}
	return nil
}

// Changed is signalled (capacity 1, never blocking the sender) whenever
// something may have become due sooner than NextDue said before.
func (s *Store) Changed() <-chan struct{} { return s.changed }

func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Store) now() time.Time { return s.opts.Now() }

// view runs fn in a read transaction unless the store is closed.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// record is what the msgs bucket stores: the Message plus bookkeeping that
// callers never see.
type record struct {
	Message
	// Token is non-zero while the message is leased; Leased names the
	// recipients in flight.
	Token  uint64    `json:"lease_token,omitempty"`
	Leased []string  `json:"leased,omitempty"`
	HeldAt time.Time `json:"held_at,omitzero"`
	// SchedAt is the key time (ns) under which the message sits in sched;
	// 0 when it is not indexed.
	SchedAt int64 `json:"sched_at,omitempty"`
	Chunks  int   `json:"chunks"`
	// BodyDropped is set when the message finished: its body chunks were
	// deleted then (Chunks is 0), the record stays for Retention. Size
	// still says how big the message was.
	BodyDropped bool `json:"body_dropped,omitempty"`

	loaded      Status // Status as stored, for the count deltas
	loadedToken uint64 // Token as stored, for the leased index
}

func timeKey(ns int64, id ID) []byte {
	k := make([]byte, 8+len(id))
	if ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	copy(k[8:], id)
	return k
}

func splitTimeKey(k []byte) (int64, ID) {
	return int64(binary.BigEndian.Uint64(k[:8])), ID(k[8:])
}

func chunkKey(id ID, n uint32) []byte {
	k := make([]byte, len(id)+4)
	copy(k, id)
	binary.BigEndian.PutUint32(k[len(id):], n)
	return k
}

func formatID(seq uint64) ID { return ID(fmt.Sprintf("%0*x", idLen, seq)) }

func validID(id ID) bool {
	if len(id) != idLen {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
