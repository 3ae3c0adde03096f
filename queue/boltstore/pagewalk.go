package boltstore

// A read-only walk of a bbolt file's page tree that reads the file with
// pread, never mmap, so that no damage can become a SIGBUS or a panic.
//
// Why not let bbolt find the damage: with NoFreelistSync, bolt.Open walks
// every reachable page to rebuild the freelist and reports what it finds
// wrong by panicking in a goroutine of its own (db.freepages), which no
// recover can catch; a truncated file faults on the mmap. So Open walks
// the tree first, checking what that walk would trip on: the meta pages,
// the file's length, every page id in range and referenced once, every page
// a branch or leaf that names itself, every element inside its page, keys
// in order. The page format is bbolt v1.4's (internal/common).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16
	pageElementSize = 16 // branch and leaf elements are both 16 bytes
	metaSize        = 64
	flagBranch      = 0x01
	flagLeaf        = 0x02
	flagBucketEntry = 0x01
	pgidNoFreelist  = ^uint64(0)
	// maxPageSize bounds the page size a meta may claim (bbolt looks for
	// the second meta page up to 16 MiB in).
	maxPageSize = 16 << 20
)

var errNoMagic = errors.New("no bbolt magic number")

// boltMeta is the part of a bbolt meta page the walk needs.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // high-water mark: pages [0, hwm) exist
	txid     uint64
}

// parseMeta reads the meta at the start of page buf; the error says why
// bbolt would refuse it.
func parseMeta(buf []byte) (boltMeta, error) {
	if len(buf) < pageHeaderSize+metaSize {
		return boltMeta{}, errors.New("cut short")
	}
	m := buf[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errNoMagic
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("format version %d, not bbolt's %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	meta := boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	if meta.pageSize < 1024 || meta.pageSize > maxPageSize || meta.pageSize&(meta.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("page size %d is impossible", meta.pageSize)
	}
	if meta.root < 2 || meta.root >= meta.hwm || (meta.freelist != pgidNoFreelist && (meta.freelist < 2 || meta.freelist >= meta.hwm)) {
		return boltMeta{}, fmt.Errorf("root page %d or freelist page %d outside the file's %d pages", meta.root, meta.freelist, meta.hwm)
	}
	return meta, nil
}

// readMeta finds the meta page bbolt would use: the valid one of the two
// with the higher transaction id. The second meta page sits one page in,
// and the page size is known only from a valid first meta, so like bbolt
// it tries every page size from 1 KiB.
func readMeta(f io.ReaderAt, size int64) (boltMeta, error) {
	buf := make([]byte, 4096)
	read := func(off int64) []byte {
		n, _ := f.ReadAt(buf, off)
		return buf[:n]
	}
	m0, err0 := parseMeta(read(0))
	m1, err1 := boltMeta{}, errNoMagic
	if err0 == nil {
		m1, err1 = parseMeta(read(int64(m0.pageSize)))
	} else {
		for ps := int64(1024); ps <= maxPageSize && ps < size; ps <<= 1 {
			if m, err := parseMeta(read(ps)); err == nil && int64(m.pageSize) == ps {
				m1, err1 = m, nil
				break
			} else if ps == 4096 {
				err1 = err // the usual page size's answer is the one to report
			}
		}
	}
	switch {
	case err0 != nil && err1 != nil:
		if errors.Is(err0, errNoMagic) && errors.Is(err1, errNoMagic) {
			return boltMeta{}, errors.New("it is not a bbolt database: neither header page carries bbolt's magic number")
		}
		return boltMeta{}, fmt.Errorf("both bbolt meta pages (the file's two headers) are damaged: page 0: %v; page 1: %v", err0, err1)
	case err0 != nil:
		return m1, nil
	case err1 != nil:
		return m0, nil
	case m1.txid > m0.txid:
		return m1, nil
	}
	return m0, nil
}

// pageWalk is one walk over a file's tree.
type pageWalk struct {
	f        io.ReaderAt
	meta     boltMeta
	seen     []bool
	problems []string
	max      int // stop collecting after this many problems
	pages    int
}

func (w *pageWalk) problem(format string, args ...any) {
	if len(w.problems) < w.max {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

// walkFile checks the structure of the bbolt file at path without mapping
// it and returns the problems found (at most max), or an error when the
// file cannot be read at all.
func walkFile(path string, max int) (problems []string, pages int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	problems, pages = walkReader(f, info.Size(), max)
	return problems, pages, nil
}

// headerProblem checks what a walk checks first: a meta page bbolt would
// use, and a file as long as that meta says. "" when both hold.
func headerProblem(f io.ReaderAt, size int64) (boltMeta, string) {
	meta, err := readMeta(f, size)
	if err != nil {
		return meta, err.Error()
	}
	if need := int64(meta.hwm) * int64(meta.pageSize); size < need {
		return meta, fmt.Sprintf("the file is %d bytes, shorter than its header says (%d pages of %d bytes, %d bytes): it was cut short",
			size, meta.hwm, meta.pageSize, need)
	}
	return meta, ""
}

// walkReader is walkFile on a file's contents.
func walkReader(f io.ReaderAt, size int64, max int) (problems []string, pages int) {
	meta, problem := headerProblem(f, size)
	if problem != "" {
		return []string{problem}, 0
	}
	w := &pageWalk{f: f, meta: meta, seen: make([]bool, meta.hwm), max: max}
	w.seen[0], w.seen[1] = true, true
	var free boltPage
	if meta.freelist != pgidNoFreelist {
		if p, ok := w.page(meta.freelist, 0, nil); ok && w.mark(meta.freelist, p.overflow, nil) {
			free, _ = w.page(meta.freelist, int(p.overflow+1)*int(meta.pageSize), nil)
		}
	}
	w.walkBucket(meta.root, nil)
	if free.data != nil {
		w.checkFreelist(free)
	}
	return w.problems, w.pages
}

// checkFreelist checks the ids the freelist page lists: bbolt writes its
// next pages there, so an id beyond the file (a flipped byte) would have it
// write at a wild offset, and an id the tree uses would have it overwrite
// live data. The page is a header, then its ids as little-endian uint64;
// a count of 0xFFFF means the real count is the first uint64.
func (w *pageWalk) checkFreelist(p boltPage) {
	const header = 16
	if p.flags != 0x10 {
		w.problem("freelist page %d: flags %#x, not a freelist page", p.id, p.flags)
		return
	}
	le := binary.LittleEndian
	start, count := header, uint64(p.count)
	if p.count == 0xFFFF {
		if len(p.data) < header+8 {
			w.problem("freelist page %d: cut short", p.id)
			return
		}
		start, count = header+8, le.Uint64(p.data[header:])
	}
	if count > uint64(len(p.data)-start)/8 {
		w.problem("freelist page %d: lists %d ids, more than its %d bytes hold", p.id, count, len(p.data))
		return
	}
	for i := range count {
		id := le.Uint64(p.data[start+int(i)*8:])
		switch {
		case id < 2 || id >= w.meta.hwm:
			w.problem("freelist page %d: lists page %d, outside the file's %d pages", p.id, id, w.meta.hwm)
			return
		case w.seen[id]:
			w.problem("freelist page %d: lists page %d as free, but it is in use", p.id, id)
			return
		}
	}
}

// boltPage is a page read from the file: its header fields and as many
// bytes as were read (the first page, more when keys lie beyond it).
type boltPage struct {
	id       uint64
	flags    uint16
	count    int
	overflow uint32
	data     []byte
}

// page reads page id, reading at least want bytes of it (bounded by its
// overflow). ok is false (with the problem noted) when it cannot be used.
func (w *pageWalk) page(id uint64, want int, stack []uint64) (boltPage, bool) {
	ps := int64(w.meta.pageSize)
	if id < 2 || id >= w.meta.hwm {
		w.problem("page %d: out of range (the file has %d pages; reached by %v)", id, w.meta.hwm, stack)
		return boltPage{}, false
	}
	buf := make([]byte, max(ps, int64(want)))
	n, err := w.f.ReadAt(buf, int64(id)*ps)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) >= ps) {
		w.problem("page %d: cannot be read: %v", id, err)
		return boltPage{}, false
	}
	le := binary.LittleEndian
	p := boltPage{id: le.Uint64(buf), flags: le.Uint16(buf[8:]), count: int(le.Uint16(buf[10:])), overflow: le.Uint32(buf[12:]), data: buf[:n]}
	if p.id != id {
		w.problem("page %d: names itself page %d (reached by %v)", id, p.id, stack)
		return boltPage{}, false
	}
	if uint64(p.overflow) >= w.meta.hwm-id {
		w.problem("page %d: claims %d overflow pages, beyond the file's %d pages", id, p.overflow, w.meta.hwm)
		return boltPage{}, false
	}
	return p, true
}

// mark notes pages id..id+overflow as referenced; false if one was already.
func (w *pageWalk) mark(id uint64, overflow uint32, stack []uint64) bool {
	for i := uint64(0); i <= uint64(overflow); i++ {
		if w.seen[id+i] {
			w.problem("page %d: referenced twice (reached by %v)", id+i, stack)
			return false
		}
		w.seen[id+i] = true
	}
	w.pages += int(overflow) + 1
	return true
}

func (w *pageWalk) walkBucket(root uint64, stack []uint64) {
	w.walkNode(root, nil, nil, stack)
}

// walkNode checks page id and its subtree; every key in it must lie in
// [lo, hi) (nil: unbounded), as a B+tree's keys do under their parent.
func (w *pageWalk) walkNode(id uint64, lo, hi []byte, stack []uint64) {
	if len(w.problems) >= w.max || len(stack) > 64 {
		if len(stack) > 64 {
			w.problem("page %d: the tree is deeper than 64 levels; its pages point in a circle", id)
		}
		return
	}
	stack = append(stack, id)
	p, ok := w.page(id, 0, stack)
	if !ok || !w.mark(id, p.overflow, stack) {
		return
	}
	if p.flags != flagBranch && p.flags != flagLeaf {
		w.problem("page %d: neither a branch nor a leaf page (flags %#x; reached by %v)", id, p.flags, stack)
		return
	}
	full := (int(p.overflow) + 1) * int(w.meta.pageSize)
	if pageHeaderSize+p.count*pageElementSize > full {
		w.problem("page %d: %d elements do not fit in the page", id, p.count)
		return
	}
	if pageHeaderSize+p.count*pageElementSize > len(p.data) {
		if p, ok = w.page(id, pageHeaderSize+p.count*pageElementSize, stack); !ok {
			return
		}
	}
	type elem struct {
		key        []byte
		flags      uint32
		child      uint64
		start, end int // where the key (and value) lie in the page
		keyEnd     int
	}
	elems := make([]elem, p.count)
	needed := 0
	le := binary.LittleEndian
	for i := range elems {
		off := pageHeaderSize + i*pageElementSize
		e := &elems[i]
		var pos int
		if p.flags == flagBranch {
			pos = int(le.Uint32(p.data[off:]))
			e.keyEnd = off + pos + int(le.Uint32(p.data[off+4:]))
			e.child = le.Uint64(p.data[off+8:])
			e.end = e.keyEnd
		} else {
			e.flags, pos = le.Uint32(p.data[off:]), int(le.Uint32(p.data[off+4:]))
			e.keyEnd = off + pos + int(le.Uint32(p.data[off+8:]))
			e.end = e.keyEnd + int(le.Uint32(p.data[off+12:]))
		}
		e.start = off + pos
		if e.start < off || e.keyEnd < e.start || e.end < e.keyEnd || e.end > full {
			w.problem("page %d: element %d lies outside the page", id, i)
			return
		}
		needed = max(needed, e.keyEnd)
		if e.flags&flagBucketEntry != 0 {
			needed = max(needed, e.keyEnd+16)
		}
	}
	if needed > len(p.data) {
		if p, ok = w.page(id, needed, stack); !ok {
			return
		}
	}
	prev := lo
	for i := range elems {
		e := &elems[i]
		e.key = p.data[e.start:e.keyEnd]
		if prev != nil && (bytes.Compare(e.key, prev) < 0 || i > 0 && bytes.Equal(e.key, prev)) || hi != nil && bytes.Compare(e.key, hi) >= 0 {
			w.problem("page %d: key %d (%x) is out of order (reached by %v)", id, i, e.key, stack)
			return
		}
		prev = e.key
	}
	for i, e := range elems {
		switch {
		case p.flags == flagBranch:
			var next []byte
			if i+1 < len(elems) {
				next = elems[i+1].key
			} else {
				next = hi
			}
			w.walkNode(e.child, e.key, next, stack)
		case e.flags&flagBucketEntry != 0:
			if e.end-e.keyEnd < 16 {
				w.problem("page %d: bucket %q has a %d-byte header, want 16", id, e.key, e.end-e.keyEnd)
				return
			}
			// Root 0 is an inline bucket, kept inside this value; bbolt's
			// own walk skips those too.
			if root := le.Uint64(p.data[e.keyEnd:]); root != 0 {
				w.walkBucket(root, stack)
			}
		}
	}
}
