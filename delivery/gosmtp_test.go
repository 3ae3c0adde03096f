package delivery

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"mailq/queue"
)

// sink is an in-process emersion/go-smtp server that keeps what it gets;
// recipients whose local part starts with "reject" get 550 5.1.1.
type sink struct {
	mu    sync.Mutex
	msgs  []fakeMessage
	count int
}

type sinkSession struct {
	s    *sink
	keep bool
	from string
	to   []string
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "reject") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	if !s.keep {
		_, err := io.Copy(io.Discard, r)
		s.s.mu.Lock()
		s.s.count++
		s.s.mu.Unlock()
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.msgs = append(s.s.msgs, fakeMessage{From: s.from, To: s.to, Data: string(b)})
	s.s.count++
	s.s.mu.Unlock()
	return nil
}

func (s *sink) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// startSink serves go-smtp on 127.0.0.1 and returns its port.
func startSink(t testing.TB, keep bool) (*sink, int) {
	t.Helper()
	s := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, keep: keep}, nil
	}))
	srv.Domain = "sink.test"
	srv.MaxRecipients = 100
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s, ln.Addr().(*net.TCPAddr).Port
}

// TestDeliveryToGoSMTP runs the engine against emersion/go-smtp: several
// recipients in one transaction, one rejected, body intact, and one log
// line per recipient with every field an operator needs.
func TestDeliveryToGoSMTP(t *testing.T) {
	s, port := startSink(t, true)
	h := newHarness(t, []Route{testRoute("sink", port)}, nil)
	id := h.enqueue(t, "sender@client.test", "a@sink.test", "reject-b@sink.test", "c@sink.test")
	h.start()
	m := h.settled(t, id, 1)
	want := map[string]queue.RecipientState{"a@sink.test": queue.Delivered, "reject-b@sink.test": queue.Bounced, "c@sink.test": queue.Delivered}
	for addr, st := range want {
		if rc := recipientOf(t, m, addr); rc.State != st {
			t.Errorf("%s: %s, want %s (%+v)", addr, rc.State, st, rc.LastReply)
		}
	}
	s.mu.Lock()
	var mine []fakeMessage
	for _, fm := range s.msgs {
		if fm.From == "sender@client.test" {
			mine = append(mine, fm)
		}
	}
	s.mu.Unlock()
	if len(mine) != 1 || strings.Join(mine[0].To, ",") != "a@sink.test,c@sink.test" {
		t.Fatalf("sink got %+v, want one transaction to a and c", mine)
	}
	if !strings.Contains(mine[0].Data, "Subject: test message\r\n") || !strings.HasSuffix(mine[0].Data, "Second line.\r\n") {
		t.Errorf("body arrived altered:\n%q", mine[0].Data)
	}
	d := h.onlyDSN(t, "sender@client.test")
	checkDSN(t, d, "failed", map[string]string{"reject-b@sink.test": "5.1.1"}, "no such user here")

	// One JSON log line per recipient outcome with the documented fields
	// (written just after the outcome is recorded).
	waitFor(t, "three outcome log lines", func() bool { return strings.Count(h.logBuf.String(), `"queue_id":"`+string(id)+`","recipient"`) >= 3 })
	found := 0
	for _, line := range strings.Split(h.logBuf.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil || ev["queue_id"] != string(id) || ev["recipient"] == nil {
			continue
		}
		found++
		for _, f := range []string{"queue_id", "recipient", "route", "remote", "tls", "attempt", "decision", "code", "enhanced", "reply", "delay"} {
			if _, ok := ev[f]; !ok {
				t.Errorf("log line lacks %q: %s", f, line)
			}
		}
		if ev["route"] != "sink" || !strings.HasPrefix(ev["remote"].(string), "127.0.0.1:") {
			t.Errorf("log line route/remote: %s", line)
		}
		if ev["recipient"] == "reject-b@sink.test" && (ev["decision"] != "bounce" || ev["code"] != float64(550) || ev["enhanced"] != "5.1.1") {
			t.Errorf("bounce log line: %s", line)
		}
	}
	if found != 3 {
		t.Errorf("found %d outcome log lines for %s, want 3:\n%s", found, id, h.logBuf.String())
	}
}
