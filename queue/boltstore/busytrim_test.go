package boltstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mailq/queue/queuetest"
)

// TestBusyQueueKeepsFileMappingSmall is issue 13's finding for the busy
// daemon: every page a commit wrote was read back through bbolt's mapping
// soon after (the next commit reads the leaves it rewrote, delivery reads
// the bodies), so while mail flowed through, the mapping's resident set
// grew with the file until all of it was resident (60 MiB of a 20,000-
// message run, beside a 13 MiB heap). Here 32 producers fill the queue,
// then 32 workers lease, read each body and record a delivery with its
// transcript, as the daemon does; the file grows to several times the
// bound, and the mapping's resident part, sampled throughout, stays under
// it (57 MiB of a 64 MiB file before the busy trim).
func TestBusyQueueKeepsFileMappingSmall(t *testing.T) {
	const (
		messages  = 3000
		producers = 32
		workers   = 32
		bodySize  = 16 << 10
		// A trim comes once trimGrowth has accumulated; what a commit
		// and the deliveries running beside it touch meanwhile comes on
		// top (8 MiB at most seen here with trimGrowth at 16 MiB).
		limitKiB = trimGrowth>>10 + 12<<10
	)
	path := filepath.Join(t.TempDir(), "queue.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var peak atomic.Int64
	sampleErr := make(chan error, 1)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			kb, err := queuetest.MappedKiB(os.Getpid(), path)
			if err != nil {
				sampleErr <- err
				return
			}
			peak.Store(max(peak.Load(), kb))
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	body := strings.Repeat(strings.Repeat("x", 77)+"\r\n", bodySize/79+1)[:bodySize]
	var enqueued, delivered atomic.Int64
	errs := make(chan error, producers+workers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < messages; i += producers {
				if _, err := s.Enqueue(envelope("a@example.com", fmt.Sprintf("r%d@example.net", i)), strings.NewReader(body)); err != nil {
					errs <- err
					return
				}
				enqueued.Add(1)
			}
		}()
	}
	// First the queue fills (a route down, or intake faster than
	// delivery), then it drains: the file grows well past the bound.
	wg.Wait()
	transcript := make([]string, 20) // what a delivery to smtp-sink records
	for i := range transcript {
		transcript[i] = fmt.Sprintf("00:00:00.%03d S: 250-a line of the server's EHLO reply", i)
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for delivered.Load() < messages {
				ls, err := s.Lease(time.Now(), 16)
				if err != nil {
					errs <- err
					return
				}
				if len(ls) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				for _, l := range ls {
					rc, err := s.Body(l.Message.ID)
					if err != nil {
						errs <- err
						return
					}
					n, err := io.Copy(io.Discard, rc)
					rc.Close()
					if err != nil || n != bodySize {
						errs <- fmt.Errorf("body of %s: %d bytes, %v", l.Message.ID, n, err)
						return
					}
					a := Attempt{Time: time.Now(), Route: "sink", Recipients: l.Recipients, Transcript: transcript}
					if err := s.RecordOutcome(l, a, []Outcome{{Recipient: l.Recipients[0], Decision: DecideDelivered}}); err != nil {
						errs <- err
						return
					}
					delivered.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-sampleErr:
		t.Fatalf("reading /proc/self/smaps: %v", err)
	default:
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fileKiB := info.Size() >> 10
	t.Logf("%d messages through the queue: file %d KiB, its mapping's resident peak %d KiB", messages, fileKiB, peak.Load())
	if fileKiB < 2*limitKiB {
		t.Fatalf("the file grew to %d KiB only; the test needs it well above the bound (%d KiB) to mean anything", fileKiB, limitKiB)
	}
	if peak.Load() > limitKiB {
		t.Errorf("while %d messages went through, the mapping of the %d KiB file held up to %d KiB resident; want at most %d KiB",
			messages, fileKiB, peak.Load(), limitKiB)
	}
}

// TestResidentFileReadsFreshFigures: the trimmer keeps /proc/self/statm
// open and reads it again from offset 0 after every commit; each read must
// give the figures of that moment, not the first read's. Mapping a file
// and touching its pages must show in the next read through the same
// descriptor.
func TestResidentFileReadsFreshFigures(t *testing.T) {
	var tr busyTrimmer
	defer tr.close()
	before, ok := tr.residentFile()
	if !ok || before <= 0 {
		t.Fatalf("residentFile: %d, %v; want the resident file-backed bytes", before, ok)
	}
	const size = 16 << 20
	path := filepath.Join(t.TempDir(), "touched")
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	var sum byte
	for i := 0; i < size; i += os.Getpagesize() {
		sum += m[i]
	}
	after, ok := tr.residentFile()
	if !ok {
		t.Fatal("second residentFile failed")
	}
	if grew := after - before; grew < size/2 {
		t.Errorf("after touching %d MiB of a file mapping, the second read grew by %d KiB (sum %d): the descriptor gave stale figures", size>>20, grew>>10, sum)
	}
}
