package boltstore

// When a damaged store's tree cannot be followed (a root or branch page
// lost to truncation or bad bytes), salvage reads every leaf page of the
// file on its own, as pages, and reassembles messages from the records
// and body chunks it finds there.

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"strconv"
)

// loosePages is what a scan of every leaf page found.
type loosePages struct {
	f       io.ReaderAt
	records map[ID]*record             // the most advanced version of each record
	raw     map[ID][]byte              // records found but not decodable
	chunks  map[ID]map[uint32]chunkLoc // where each body chunk lies
}

type chunkLoc struct{ off, n int64 }

// scanLeaves reads the file page by page. Freed pages still hold older
// versions of records; of several, the one with the most attempts (then
// the most recipients done) is kept, since a record only moves forward.
func scanLeaves(path string) (*loosePages, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	lp := &loosePages{f: f, records: map[ID]*record{}, raw: map[ID][]byte{}, chunks: map[ID]map[uint32]chunkLoc{}}
	ps := int64(4096)
	if m, err := readMeta(f, info.Size()); err == nil {
		ps = int64(m.pageSize)
	}
	le := binary.LittleEndian
	head := make([]byte, ps)
	for id := int64(2); (id+1)*ps <= info.Size(); id++ {
		if _, err := f.ReadAt(head, id*ps); err != nil {
			break
		}
		if int64(le.Uint64(head)) != id || le.Uint16(head[8:]) != flagLeaf {
			continue
		}
		count, overflow := int(le.Uint16(head[10:])), int64(le.Uint32(head[12:]))
		full := (overflow + 1) * ps
		if id*ps+full > info.Size() || pageHeaderSize+count*pageElementSize > int(full) {
			continue
		}
		page := head
		if overflow > 0 {
			page = make([]byte, full)
			if _, err := f.ReadAt(page, id*ps); err != nil {
				continue
			}
		}
		lp.addLeaf(page, count, id*ps, 0)
		id += overflow // the overflow pages belong to this one
	}
	return lp, nil
}

// bucketHeaderSize is the size of a bucket's header in its parent's leaf
// (root page id, sequence); an inline bucket's page follows it.
const bucketHeaderSize = 16

// addLeaf adds the elements of a leaf page, page, with count elements,
// that starts at offset at in the file. A small bucket is stored inline,
// its leaf page inside its parent's element (a small body's own bucket,
// bodies.go): its elements are read too, depth levels down.
func (lp *loosePages) addLeaf(page []byte, count int, at int64, depth int) {
	le := binary.LittleEndian
	if pageHeaderSize+count*pageElementSize > len(page) {
		return
	}
	for i := range count {
		off := pageHeaderSize + i*pageElementSize
		flags, pos := le.Uint32(page[off:]), int(le.Uint32(page[off+4:]))
		ks, vs := int(le.Uint32(page[off+8:])), int(le.Uint32(page[off+12:]))
		start := off + pos
		if pos < 0 || ks < 0 || vs < 0 || start+ks+vs > len(page) || start+ks+vs < start {
			continue
		}
		value := page[start+ks : start+ks+vs]
		switch {
		case flags == 0:
			lp.add(page[start:start+ks], value, at+int64(start+ks))
		case flags == flagBucketEntry && depth < 2 && len(value) >= bucketHeaderSize+pageHeaderSize && le.Uint64(value) == 0:
			inline := value[bucketHeaderSize:]
			if le.Uint16(inline[8:]) == flagLeaf {
				lp.addLeaf(inline, int(le.Uint16(inline[10:])), at+int64(start+ks+bucketHeaderSize), depth+1)
			}
		}
	}
}

func (lp *loosePages) add(key, value []byte, valueAt int64) {
	switch {
	case len(key) == idLen+4 && validID(ID(key[:idLen])):
		id := ID(key[:idLen])
		if lp.chunks[id] == nil {
			lp.chunks[id] = map[uint32]chunkLoc{}
		}
		lp.chunks[id][binary.BigEndian.Uint32(key[idLen:])] = chunkLoc{valueAt, int64(len(value))}
	case len(key) == idLen && len(value) > 0 && value[0] == '{':
		id := ID(key)
		if !validID(id) {
			// A key damage made into no id: the record's own id says whose.
			if id = namedID(value); id == "" {
				return
			}
		}
		r, err := decodeRecord(id, value)
		if err != nil {
			// Only what still names itself as this message's record: other
			// buckets (the event journal) key JSON by ids too.
			if !bytes.Contains(value, []byte(`"id":"`+string(id)+`"`)) || !bytes.Contains(value, []byte(`"recipients"`)) {
				return
			}
			if _, ok := lp.records[id]; !ok && len(value) > len(lp.raw[id]) {
				lp.raw[id] = append([]byte(nil), value...)
			}
			return
		}
		if old := lp.records[id]; old == nil || progress(r) > progress(old) {
			lp.records[id] = r
			delete(lp.raw, id)
		}
	}
}

// progress orders versions of one record: attempts, then recipients done.
func progress(r *record) int {
	done := 0
	for _, rc := range r.Recipients {
		if rc.State.Done() {
			done++
		}
	}
	return len(r.Attempts)*1000 + done
}

// message assembles id from the pages, or says why it cannot.
func (lp *loosePages) message(id ID) (*salvaged, *Lost) {
	r := lp.records[id]
	if r == nil {
		l := &Lost{ID: id, Reason: "its record is damaged"}
		for _, a := range addressInJSON.FindAllSubmatch(lp.raw[id], -1) {
			l.Recipients = append(l.Recipients, string(a[1]))
		}
		return nil, l
	}
	m := &salvaged{rec: r}
	var size int64
	for n := 0; n < r.Chunks; n++ {
		loc, ok := lp.chunks[id][uint32(n)]
		if !ok {
			return nil, lostWithRecipients(r, "body chunk "+strconv.Itoa(n)+" of "+strconv.Itoa(r.Chunks)+" was not found in any readable page")
		}
		c := make([]byte, loc.n)
		if _, err := lp.f.ReadAt(c, loc.off); err != nil {
			return nil, lostWithRecipients(r, "body chunk "+strconv.Itoa(n)+" cannot be read: "+err.Error())
		}
		m.chunks = append(m.chunks, c)
		size += loc.n
	}
	if size != r.storedSize() {
		return nil, lostWithRecipients(r, "the body pieces found add up to "+strconv.FormatInt(size, 10)+" bytes, the record says "+strconv.FormatInt(r.storedSize(), 10))
	}
	return m, nil
}

func lostWithRecipients(r *record, reason string) *Lost {
	l := &Lost{ID: r.ID, Reason: reason}
	for _, rc := range r.Recipients {
		if !rc.State.Done() {
			l.Recipients = append(l.Recipients, rc.Address)
		}
	}
	return l
}

func (lp *loosePages) close() {
	if c, ok := lp.f.(io.Closer); ok {
		c.Close()
	}
}
