package boltstore

// Salvage is `mailq salvage`: it copies every message that can still be
// read from a damaged store into a new one, and lists what it could not.
// It never writes the damaged file: it reads a private copy of it.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Lost is a message salvage could not copy whole.
type Lost struct {
	ID         ID
	Reason     string
	Recipients []string // addresses still readable, so senders can be told
}

// SalvageReport is what Salvage did.
type SalvageReport struct {
	Saved    int
	Lost     []Lost
	Sequence uint64 // the id sequence carried over, so ids are never reused
}

// salvageBatch is how many messages go into one transaction of the new store.
const salvageBatch = 500

// addressInJSON finds recipient addresses in a record too damaged to decode.
var addressInJSON = regexp.MustCompile(`"address":"([^"\\]{1,320})"`)

// idInJSON finds the id a record names itself by (its first field).
var idInJSON = regexp.MustCompile(`^\{"id":"([0-9a-f]{16})"`)

// Salvage copies every readable message (record and complete body, with
// its state and attempts) from the store at from into a new store at to,
// which must not exist yet.
func Salvage(from, to string) (*SalvageReport, error) {
	if _, err := os.Stat(to); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("salvage: %s already exists; name a new file (salvage never overwrites)", to)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return nil, fmt.Errorf("salvage: %w", err)
	}
	work := to + ".damaged-copy"
	if err := copyForReading(from, work); err != nil {
		return nil, err
	}
	defer os.Remove(work)
	dst, err := Open(to, Options{})
	if err != nil {
		return nil, fmt.Errorf("salvage: create %s: %w", to, err)
	}
	rep := &SalvageReport{}
	saved := map[ID]bool{} // kept, whether or not its batch is written yet
	lost := map[ID]Lost{}
	var batch []salvaged
	flush := func() error {
		err := dst.restore(batch, rep.Sequence)
		batch = batch[:0]
		return err
	}
	keep := func(m *salvaged) error {
		if saved[m.rec.ID] {
			return nil
		}
		saved[m.rec.ID] = true
		delete(lost, m.rec.ID)
		if m.rec.ID > formatID(rep.Sequence) {
			rep.Sequence = sequenceOf(m.rec.ID)
		}
		if batch = append(batch, *m); len(batch) == salvageBatch {
			return flush()
		}
		return nil
	}
	var general []Lost // problems without a message id

	// First through bbolt, following the tree.
	src, listErr := openDamaged(work)
	if listErr == nil {
		defer src.Close()
		var l listing
		l, listErr = salvageIDs(src)
		rep.Sequence = l.seq
		for _, id := range l.ids {
			m, lm := readSalvage(src, id)
			switch {
			case lm != nil:
				lost[id] = *lm
			case m != nil:
				if err := keep(m); err != nil {
					dst.Close()
					return rep, err
				}
			case l.listed[id]:
				// Listed, yet a lookup does not find it: damage misleads
				// the search (a key out of order), so the pages are read.
				lost[id] = Lost{ID: id, Reason: "listed in the store but not found through its tree"}
			}
		}
		// A key damaged into something that is no message id is no lost
		// message: the message its record names is looked for page by page
		// (the record is found under the damaged key); a record that names
		// none is reported as a damaged key, not as an id.
		for _, k := range l.badKeys {
			switch {
			case k.ID == "":
				general = append(general, k)
			case !l.listed[k.ID]:
				if _, ok := lost[k.ID]; !ok {
					lost[k.ID] = k
				}
			}
		}
		general = append(general, setAsideLost(src)...)
	}
	// Where the tree is broken, page by page for what it no longer reaches;
	// where it is whole but some messages could not be read through it
	// (a damaged body page, a damaged record), page by page for those.
	if listErr != nil || len(lost) > 0 {
		retry := lostSet(lost) // with a whole tree, only these: the others were deleted
		if listErr != nil {
			general = append(general, Lost{Reason: fmt.Sprintf("the store's tree is damaged (%v); every leaf page was read on its own, "+
				"so a message deleted or purged before the damage may come back", listErr)})
		}
		lp, err := scanLeaves(work)
		if err != nil {
			dst.Close()
			return rep, fmt.Errorf("salvage: %w", err)
		}
		defer lp.close()
		ids := map[ID]bool{}
		for id := range lp.records {
			ids[id] = true
		}
		for id := range lp.raw {
			ids[id] = true
		}
		for _, id := range sortedIDs(ids) {
			if saved[id] || listErr == nil && !retry[id] {
				continue
			}
			m, l := lp.message(id)
			if l != nil {
				if _, ok := lost[id]; !ok || len(l.Recipients) > 0 {
					lost[id] = *l
				}
				continue
			}
			if err := keep(m); err != nil {
				dst.Close()
				return rep, err
			}
		}
	}
	if err := flush(); err != nil {
		dst.Close()
		return rep, err
	}
	for id := range lost {
		if sequenceOf(id) > rep.Sequence {
			rep.Sequence = sequenceOf(id) // a lost id must not be handed out again either
		}
	}
	if err := dst.restore(nil, rep.Sequence); err != nil {
		dst.Close()
		return rep, err
	}
	rep.Saved = len(saved)
	for _, id := range sortedIDs(lostSet(lost)) {
		rep.Lost = append(rep.Lost, lost[id])
	}
	rep.Lost = append(rep.Lost, general...)
	if err := dst.Close(); err != nil {
		return rep, err
	}
	// Reopened once, so the indexes are rebuilt now, not at the daemon's start.
	if dst, err = Open(to, Options{}); err != nil {
		return rep, fmt.Errorf("salvage: reopen %s to index it: %w", to, err)
	}
	if err := dst.Close(); err != nil {
		return rep, err
	}
	// The new file is meant to be moved into place; its marker would stay
	// behind under the wrong name (the daemon writes its own).
	os.Remove(markerPath(to))
	return rep, nil
}

func sequenceOf(id ID) uint64 {
	n, _ := strconv.ParseUint(string(id), 16, 64)
	return n
}

func lostSet(m map[ID]Lost) map[ID]bool {
	s := make(map[ID]bool, len(m))
	for id := range m {
		s[id] = true
	}
	return s
}

func sortedIDs(set map[ID]bool) []ID {
	ids := make([]ID, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// copyForReading copies from to work (0600) and, when the file was cut
// short, pads the copy with zeros to the length its header claims, so the
// missing pages read as damage instead of faulting the mapping.
func copyForReading(from, work string) error {
	unlock, err := lockShared(from)
	if err != nil {
		return fmt.Errorf("salvage: %w; stop the daemon first", err)
	}
	defer unlock()
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("salvage: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(work, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("salvage: %w", err)
	}
	defer out.Close()
	n, err := io.Copy(out, in)
	if err != nil {
		return fmt.Errorf("salvage: copy %s: %w", from, err)
	}
	repairMetaChecksums(out)
	if m, err := readMeta(out, n); err == nil && n < int64(m.hwm)*int64(m.pageSize) {
		if err := out.Truncate(int64(m.hwm) * int64(m.pageSize)); err != nil {
			return fmt.Errorf("salvage: pad the copy: %w", err)
		}
	}
	return nil
}

// openDamaged opens the private copy read-only: no freelist rebuild (the
// walk that panics on damage), no lock conflict with anything.
func openDamaged(path string) (db *bolt.DB, err error) {
	defer protect(&err)()
	return bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
}

// protect turns a panic or memory fault on this goroutine into *err.
func protect(err *error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			*err = fmt.Errorf("damaged page: %v", r)
		}
	}
}

// listing is what the msgs bucket lists through the tree.
type listing struct {
	seq     uint64      // the bucket's id sequence
	ids     []ID        // the ids to try
	listed  map[ID]bool // those the bucket itself listed
	badKeys []Lost      // keys that are no message id, as the message their record names
}

// salvageIDs lists the ids to try: those the msgs bucket yields before any
// damage, then, past damage, every id the bucket's sequence has handed out.
// Keys that are no message id (damage changed them) come back apart.
func salvageIDs(db *bolt.DB) (l listing, err error) {
	l.listed = map[ID]bool{}
	err = func() (err error) {
		defer protect(&err)()
		return db.View(func(tx *bolt.Tx) error {
			msgs := tx.Bucket(bucketMsgs)
			if msgs == nil {
				return errors.New("no msgs bucket")
			}
			l.seq = msgs.Sequence()
			return msgs.ForEach(func(k, v []byte) error {
				if !validID(ID(k)) {
					l.badKeys = append(l.badKeys, damagedKey(k, v))
					return nil
				}
				l.ids = append(l.ids, ID(k))
				l.listed[ID(k)] = true
				return nil
			})
		})
	}()
	if err != nil {
		for n := uint64(1); n <= l.seq; n++ {
			if id := formatID(n); !l.listed[id] {
				l.ids = append(l.ids, id)
			}
		}
		sort.Slice(l.ids, func(i, j int) bool { return l.ids[i] < l.ids[j] })
	}
	return l, err
}

// damagedKey describes a msgs key that is no message id: as the message
// its record names, or, when it names none, as the key alone.
func damagedKey(k, v []byte) Lost {
	id := namedID(v)
	if id == "" {
		return Lost{Reason: fmt.Sprintf("the store holds a record under a damaged key %q that names no message; nothing was copied from it", k)}
	}
	l := Lost{ID: id, Reason: fmt.Sprintf("its key in the store is damaged (%q) and its pages could not be read whole", k)}
	for _, a := range addressInJSON.FindAllSubmatch(v, -1) {
		l.Recipients = append(l.Recipients, string(a[1]))
	}
	return l
}

// salvaged is one message read whole from the damaged store.
type salvaged struct {
	rec    *record
	chunks [][]byte
}

// readSalvage reads one message; nil, nil when there is no such id.
func readSalvage(db *bolt.DB, id ID) (m *salvaged, lost *Lost) {
	var raw []byte
	err := func() (err error) {
		defer protect(&err)()
		return db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketMsgs).Get([]byte(id))
			if v == nil {
				return nil
			}
			raw = append([]byte(nil), v...)
			r, err := decodeRecord(id, raw)
			if err != nil {
				return err
			}
			m = &salvaged{rec: r}
			var size int64
			for n := 0; n < r.Chunks; n++ {
				c := bodyChunk(tx, id, n)
				if c == nil {
					return fmt.Errorf("body chunk %d of %d is missing", n, r.Chunks)
				}
				m.chunks = append(m.chunks, append([]byte(nil), c...))
				size += int64(len(c))
			}
			if size != r.storedSize() {
				return fmt.Errorf("body is %d bytes, the record says %d", size, r.storedSize())
			}
			return nil
		})
	}()
	if err == nil {
		return m, nil
	}
	l := &Lost{ID: id, Reason: err.Error()}
	if m != nil {
		for _, rc := range m.rec.Recipients {
			if !rc.State.Done() {
				l.Recipients = append(l.Recipients, rc.Address)
			}
		}
	} else {
		for _, a := range addressInJSON.FindAllSubmatch(raw, -1) {
			l.Recipients = append(l.Recipients, string(a[1]))
		}
	}
	return nil, l
}

// namedID is the message id a record, damaged or not, names itself by; ""
// when it names none.
func namedID(v []byte) ID {
	if m := idInJSON.FindSubmatch(v); m != nil {
		return ID(m[1])
	}
	return ""
}

// setAsideLost lists the records an earlier open set aside as damaged.
func setAsideLost(db *bolt.DB) (lost []Lost) {
	var err error
	func() {
		defer protect(&err)()
		db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketDamaged)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				var d damagedRecord
				l := Lost{ID: ID(k), Reason: "set aside as damaged by an earlier start"}
				if json.Unmarshal(v, &d) == nil {
					l.Reason += ": " + d.Reason
					for _, a := range addressInJSON.FindAllSubmatch(d.Record, -1) {
						l.Recipients = append(l.Recipients, string(a[1]))
					}
				}
				lost = append(lost, l)
				return nil
			})
		})
	}()
	if err != nil {
		lost = append(lost, Lost{Reason: fmt.Sprintf("the records set aside earlier could not be read: %v", err)})
	}
	return lost
}

// restore writes salvaged messages into this (new) store as they were
// and carries the id sequence over. It writes records and bodies only and
// marks the indexes out of date, so the next Open rebuilds them from the
// records (recover.go), leases left by the damaged store included.
func (s *Store) restore(batch []salvaged, seq uint64) error {
	return s.write(0, func(tx *bolt.Tx, d *delta) error {
		msgs := tx.Bucket(bucketMsgs)
		if msgs.Sequence() < seq {
			if err := msgs.SetSequence(seq); err != nil {
				return err
			}
		}
		for _, m := range batch {
			if err := putBody(tx, m.rec.ID, m.chunks); err != nil {
				return err
			}
			if err := putRecord(tx, m.rec); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(metaIndexVersion)
	})
}

// repairMetaChecksums rewrites, in the private copy only, the checksum of
// a meta page whose fields are otherwise sound (magic, version, a
// possible page size, root and freelist within the file), so that a store
// whose two headers took a few bad bytes can still be read.
func repairMetaChecksums(f *os.File) {
	buf := make([]byte, pageHeaderSize+metaSize)
	fix := func(off int64) uint32 {
		if n, _ := f.ReadAt(buf, off); n < len(buf) {
			return 0
		}
		if _, err := parseMeta(buf); err == nil || err.Error() != "checksum mismatch" {
			if err == nil {
				return binary.LittleEndian.Uint32(buf[pageHeaderSize+8:])
			}
			return 0
		}
		m := buf[pageHeaderSize:]
		h := fnv.New64a()
		h.Write(m[:56])
		binary.LittleEndian.PutUint64(m[56:], h.Sum64())
		if _, err := parseMeta(buf); err != nil {
			return 0
		}
		f.WriteAt(m[56:64], off+pageHeaderSize+56)
		return binary.LittleEndian.Uint32(m[8:])
	}
	ps := fix(0)
	if ps == 0 {
		ps = 4096
	}
	fix(int64(ps))
}
