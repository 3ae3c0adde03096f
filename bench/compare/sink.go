package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// sink is Postfix's smtp-sink on a loopback port, dumping every transaction
// (-D) into a file that a goroutine reads as it grows, counting each RCPT TO
// address: every recipient the benchmark sends is unique (smtp-source -N, or
// a number in the sendmail messages), and its domain names the run, system
// and figure (the tag), so a count per tag is exact and a repeat is a
// duplicate.
type sink struct {
	port int
	cmd  *exec.Cmd
	dump string
	tally
	quit, done chan struct{}
	stopOnce   sync.Once
}

// tally counts recipients as the dump file shows them.
type tally struct {
	mu     sync.Mutex
	seen   map[string]int // address → transactions that carried it
	byTag  map[string]int // tag → recipients received (repeats included)
	dups   map[string]int // tag → addresses received more than once
	notify chan struct{}  // closed and replaced on every change
}

func newTally() tally {
	return tally{seen: map[string]int{}, byTag: map[string]int{}, dups: map[string]int{}, notify: make(chan struct{})}
}

var (
	rcptPrefix   = []byte("X-Rcpt-Args: <")
	nlRcptPrefix = []byte("\nX-Rcpt-Args: <")
)

// add counts the X-Rcpt-Args lines of complete dump lines. The header
// smtp-sink writes first ("X-Rcpt-Args: <addr> [params]", one per RCPT)
// is the only place such a line can start: bodies are ours or smtp-source's.
// It jumps from one such line to the next with bytes.Index rather than
// looking at every line: at 100 KiB a message is ~1,300 lines of body, and
// this reader shares the machine with what it measures.
func (t *tally) add(lines []byte) {
	var changed bool
	t.mu.Lock()
	for len(lines) > 0 {
		if !bytes.HasPrefix(lines, rcptPrefix) {
			i := bytes.Index(lines, nlRcptPrefix)
			if i < 0 {
				break
			}
			lines = lines[i+1:]
		}
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		rest := line[len(rcptPrefix):]
		end := bytes.IndexByte(rest, '>')
		if end < 0 {
			continue
		}
		addr := string(rest[:end])
		at := bytes.LastIndexByte(rest[:end], '@')
		if at < 0 {
			continue
		}
		tag := string(rest[at+1 : end])
		t.seen[addr]++
		if t.seen[addr] == 2 {
			t.dups[tag]++
		}
		t.byTag[tag]++
		changed = true
	}
	if changed {
		close(t.notify)
		t.notify = make(chan struct{})
	}
	t.mu.Unlock()
}

// count returns how many recipients of tag arrived, and how many of its
// addresses arrived more than once.
func (t *tally) count(tag string) (got, dups int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byTag[tag], t.dups[tag]
}

// waitFor waits until want recipients of tag have arrived and returns when
// (to the poll interval of the dump reader, 5 ms).
func (t *tally) waitFor(tag string, want int, limit time.Duration) (time.Time, error) {
	deadline := time.After(limit)
	for {
		t.mu.Lock()
		got, ch := t.byTag[tag], t.notify
		t.mu.Unlock()
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
	got, dups := t.count(tag)
	if dups > 0 {
		return fmt.Errorf("%s: %d addresses arrived more than once (%d recipients received, %d sent)", tag, dups, got, want)
	}
	if got != want {
		return fmt.Errorf("%s: %d recipients arrived at the sink, %d were sent: %d lost", tag, got, want, want-got)
	}
	return nil
}

// startSink starts smtp-sink on a free loopback port, dumping into dir (a
// tmpfs by default, so that the dump's writeback does not compete with the
// fsyncs being measured).
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
	// smtp-sink writes each transaction to a file of its own next to the
	// dump (the dump's name plus a random number), then appends it to the
	// dump: as nobody, so the directory is nobody's, 0700 (message copies
	// are not for everyone; root reads them anyway).
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	dump := filepath.Join(dir, fmt.Sprintf("sink-%d.dump", port))
	f, err := os.OpenFile(dump, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	if err := os.Chown(dump, uid, gid); err != nil {
		return nil, err
	}
	s := &sink{port: port, dump: dump, tally: newTally(), quit: make(chan struct{}), done: make(chan struct{})}
	s.cmd = exec.Command("smtp-sink", "-u", "nobody", "-D", dump, fmt.Sprintf("127.0.0.1:%d", port), "1024")
	log, err := os.Create(dump + ".log")
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("smtp-sink: %w", err)
	}
	log.Close()
	go s.read()
	if err := waitListening(port, 10*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("smtp-sink: %w (its log: %s.log)", err, dump)
	}
	return s, nil
}

// read follows the dump file as smtp-sink appends to it, feeding whole
// lines to the tally; after stop it reads what is left and returns.
func (s *sink) read() {
	defer close(s.done)
	f, err := os.Open(s.dump)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: sink dump:", err)
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var partial []byte
	stopping := false
	for {
		n, err := f.Read(buf)
		if n > 0 {
			data := buf[:n]
			if len(partial) > 0 {
				data = append(partial, data...)
			}
			last := bytes.LastIndexByte(data, '\n')
			if last >= 0 {
				s.add(data[:last+1])
				partial = append(partial[:0:0], data[last+1:]...)
			} else {
				partial = append([]byte(nil), data...) // data may be buf, which the next read overwrites
			}
			continue
		}
		if err != nil && err != io.EOF {
			fmt.Fprintln(os.Stderr, "compare: sink dump:", err)
			return
		}
		if stopping { // smtp-sink has exited and the file is read to its end
			return
		}
		select {
		case <-s.quit:
			stopping = true
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop ends smtp-sink (by its PID), reads the rest of the dump and removes it.
func (s *sink) stop() { s.stopOnce.Do(s.stopNow) }

func (s *sink) stopNow() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		waitOrKill(s.cmd, 5*time.Second)
	}
	close(s.quit)
	<-s.done
	if !keepFiles {
		os.Remove(s.dump)
		os.Remove(s.dump + ".log")
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
