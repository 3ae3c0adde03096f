package boltstore

// bbolt reads the file through a shared read-only mapping, and every page
// a walk touches stays in the daemon's resident set (RssFile) until the
// kernel needs the memory back: one walk of the records at 100k messages
// added 150 MiB, and the index check at Open 170 MiB, though the daemon's
// own heap was 3 MiB (issue 13). With large page-cache folios a touched
// 4 KiB page maps the whole folio, so a walk maps far more than it reads.
// After a walk over much of the file, trim asks the kernel to drop the
// mapping's page table entries (madvise MADV_DONTNEED). For a shared file
// mapping that loses nothing: the data stays in the page cache and the
// next read maps it again with a minor fault.

import (
	"golang.org/x/sys/unix"

	bolt "go.etcd.io/bbolt"
)

// trimAfter is how many entries a walk reads before it trims the mapping
// (and again after as many more): smaller walks touch too little to matter.
// What a walk leaves mapped depends on where the pages lie, not only on
// how many it reads: in a store whose indexes were rebuilt (or have aged)
// their pages are scattered over the file, each touched page maps its
// whole folio, and 4096 entries between trims left up to 104 MiB mapped
// by a list and 328 MiB by the index check after a crash, at 1M messages.
// A trim is one madvise over the mapping (cheap where nothing is mapped),
// so trimming four times as often costs little.
const trimAfter = 1024

// trim drops the file mapping from the resident set. It runs inside a read
// transaction, which keeps bbolt from remapping meanwhile (a remap waits
// for every reader), so the range is the current mapping; tx.Size() is
// the file's used length, never more than the mapping. Best effort: an
// error only leaves the pages resident.
func (s *Store) trim() {
	s.view(func(tx *bolt.Tx) error {
		trimMapping(s.db, tx)
		return nil
	})
}

// trimMapping is trim inside a transaction tx already open on db, for a
// walk that trims as it goes, keeping its peak down too.
func trimMapping(db *bolt.DB, tx *bolt.Tx) {
	data, size := db.Info().Data, tx.Size()
	if data == 0 || size <= 0 {
		return
	}
	// The address comes from bbolt as a uintptr; passing it straight to
	// the system call avoids converting it back to a pointer.
	unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED)
}
