package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sink is Postfix's smtp-sink on a loopback port, writing every mail
// transaction to a capture file of its own (-d) in a directory that this
// process watches: when smtp-sink closes a completed transaction's file,
// compare reads the file's head (the X-Rcpt-Args lines come first), counts
// each RCPT TO address and removes the file. Every recipient the benchmark
// sends is unique (smtp-source -N, or a number in the sendmail messages),
// and its domain names the run, system and figure (the tag), so a count
// per tag is exact and a repeat is a duplicate.
//
// Why per-transaction files and inotify rather than smtp-sink -D (one
// file that every transaction is appended to): -D writes each transaction
// to a file of its own anyway, then copies it into the shared file, and
// the reader must read every byte of every body to find the next header;
// at 100 KiB a message that was most of the rig's cost (docs/benchmarks.md).
// With -d the sink writes each body once and compare reads ~300 bytes.
//
// Which transactions count: smtp-sink opens the file at MAIL FROM and, at
// the end of DATA, closes it and leaves it; a transaction that ends
// otherwise (RSET, a new EHLO, a lost connection, mid-DATA included) is
// unlinked first and closed after. So a file that is closed after writing
// (IN_CLOSE_WRITE) and still there is a completed transaction, and an
// aborted one is gone before its close event is read.
type sink struct {
	port int
	cmd  *exec.Cmd
	dir  string // smtp-sink's capture directory (-d dir/c.)
	log  string
	tally
	events     *os.File // the inotify instance watching dir
	done       chan struct{}
	stopOnce   sync.Once
	readerQuit time.Duration // how long stop lets the reader drain events
}

// tally counts recipients as the capture files show them.
type tally struct {
	mu     sync.Mutex
	seen   map[string]int // address → transactions that carried it
	byTag  map[string]int // tag → recipients received (repeats included)
	dups   map[string]int // tag → addresses received more than once
	err    error          // a capture that could not be counted (fails verify)
	notify chan struct{}  // closed and replaced on every change
}

func newTally() tally {
	return tally{seen: map[string]int{}, byTag: map[string]int{}, dups: map[string]int{}, notify: make(chan struct{})}
}

// record counts the recipients of one completed transaction.
func (t *tally) record(addrs [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range addrs {
		at := bytes.LastIndexByte(a, '@')
		if at < 0 {
			continue
		}
		addr, tag := string(a), string(a[at+1:])
		t.seen[addr]++
		if t.seen[addr] == 2 {
			t.dups[tag]++
		}
		t.byTag[tag]++
	}
	t.changed()
}

// fail records why the count can no longer be trusted; verify reports it.
func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
	t.changed()
}

func (t *tally) changed() {
	close(t.notify)
	t.notify = make(chan struct{})
}

// count returns how many recipients of tag arrived, and how many of its
// addresses arrived more than once.
func (t *tally) count(tag string) (got, dups int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byTag[tag], t.dups[tag]
}

// waitFor waits until want recipients of tag have arrived and returns when.
func (t *tally) waitFor(tag string, want int, limit time.Duration) (time.Time, error) {
	deadline := time.After(limit)
	for {
		t.mu.Lock()
		got, ch, err := t.byTag[tag], t.notify, t.err
		t.mu.Unlock()
		if err != nil {
			return time.Time{}, err
		}
		if got >= want {
			return time.Now(), nil
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, fmt.Errorf("%s: %d of %d recipients at the sink after %v", tag, got, want, limit)
		}
	}
}

// verify is nil when exactly want distinct recipients of tag arrived, each once.
func (t *tally) verify(tag string, want int) error {
	t.mu.Lock()
	err := t.err
	t.mu.Unlock()
	if err != nil {
		return err
	}
	got, dups := t.count(tag)
	if dups > 0 {
		return fmt.Errorf("%s: %d addresses arrived more than once (%d recipients received, %d sent)", tag, dups, got, want)
	}
	if got != want {
		return fmt.Errorf("%s: %d recipients arrived at the sink, %d were sent: %d lost", tag, got, want, want-got)
	}
	return nil
}

// startSink starts smtp-sink on a free loopback port, capturing into a new
// directory under dir (a tmpfs by default, so that the captures' writeback
// does not compete with the fsyncs being measured).
func startSink(dir string) (*sink, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("smtp-sink runs as nobody: %w", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// smtp-sink creates its capture files as nobody, so their directory
	// is nobody's, 0700 (message copies are not for everyone; root reads
	// and removes them anyway), in dir, which nobody may only traverse.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	s := &sink{port: port, dir: filepath.Join(dir, fmt.Sprintf("sink-%d", port)), log: filepath.Join(dir, fmt.Sprintf("sink-%d.log", port)),
		tally: newTally(), done: make(chan struct{}), readerQuit: 200 * time.Millisecond}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return nil, err
	}
	if s.events, err = watchClosedFiles(s.dir); err != nil {
		return nil, err
	}
	// The template has no % (strftime) and no trailing /: smtp-sink
	// appends a random hex number to "c.", one file per transaction.
	s.cmd = exec.Command("smtp-sink", "-u", "nobody", "-d", filepath.Join(s.dir, "c."), fmt.Sprintf("127.0.0.1:%d", port), "1024")
	log, err := os.Create(s.log)
	if err != nil {
		s.events.Close()
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		log.Close()
		s.events.Close()
		return nil, fmt.Errorf("smtp-sink: %w", err)
	}
	log.Close()
	go s.read()
	if err := waitListening(port, 10*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("smtp-sink: %w (its log: %s)", err, s.log)
	}
	return s, nil
}

// watchClosedFiles is an inotify instance reporting files in dir closed
// after writing. It is non-blocking, so os.File reads it through Go's
// poller: a read deadline ends a wait.
func watchClosedFiles(dir string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify on %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), "inotify:"+dir), nil
}

// read counts every capture file smtp-sink closes, until stop sets a
// deadline on the events.
func (s *sink) read() {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	head := make([]byte, 4096)
	for {
		n, err := s.events.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				s.fail(fmt.Errorf("sink: reading inotify events: %w", err))
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				// Events were dropped: closes that were never seen. Say so
				// rather than report a loss that did not happen.
				s.fail(errors.New("sink: the inotify queue overflowed, so some transactions were not counted; raise fs.inotify.max_queued_events"))
				continue
			}
			if ev.Mask&unix.IN_CLOSE_WRITE == 0 || ev.Len == 0 {
				continue
			}
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if head = s.take(filepath.Join(s.dir, string(name)), head); head == nil {
				return
			}
		}
	}
}

// take counts the recipients of the capture file at path, if it is still
// there (an aborted transaction's is not), and removes it. It returns the
// read buffer for the next file (grown if a head needed more), nil after
// a failure that ends counting.
func (s *sink) take(path string, head []byte) []byte {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return head // unlinked before it was closed: aborted
	}
	if err != nil {
		s.fail(fmt.Errorf("sink: %w", err))
		return nil
	}
	defer f.Close()
	for {
		n, err := f.ReadAt(head, 0)
		if err != nil && err != io.EOF {
			s.fail(fmt.Errorf("sink: %w", err))
			return nil
		}
		addrs, complete := captureRecipients(head[:n])
		if complete {
			s.record(addrs)
			break
		}
		if n < len(head) { // the whole file, and no Received: line
			s.fail(fmt.Errorf("sink: %s ends before smtp-sink's Received: line: not a completed transaction's capture", path))
			return nil
		}
		head = make([]byte, 2*len(head))
	}
	if err := os.Remove(path); err != nil {
		s.fail(fmt.Errorf("sink: %w", err))
		return nil
	}
	return head
}

// stop counts the transactions already closed, then ends smtp-sink (by
// its PID) and removes its directory. Counting ends first: smtp-sink's
// exit closes the files of transactions still in progress, which are not
// completed ones.
func (s *sink) stop() { s.stopOnce.Do(s.stopNow) }

func (s *sink) stopNow() {
	s.events.SetReadDeadline(time.Now().Add(s.readerQuit))
	<-s.done
	s.events.Close()
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		waitOrKill(s.cmd, 5*time.Second)
	}
	if !keepFiles {
		os.RemoveAll(s.dir)
		os.Remove(s.log)
	}
}

// holder is a next hop that accepts connections and never says a word: a
// route to it is held (every delivery waits for a greeting that does not
// come), so an intake figure measures intake only, without delivery
// attempts or deferrals competing for the disk.
type holder struct {
	ln    net.Listener
	port  int
	mu    sync.Mutex
	conns []net.Conn
}

func startHolder() (*holder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &holder{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

func (h *holder) close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
}
