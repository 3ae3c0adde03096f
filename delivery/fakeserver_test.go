package delivery

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a scripted SMTP server on 127.0.0.1. What it answers is
// chosen by the local part of each address, up to the first "-":
//
//	recipient  ok (default)   RCPT 250, end-of-data 250
//	           r450 r550 r552 r452   that reply to RCPT
//	           d554 d451      end-of-data gets that reply (whole transaction)
//	           drop           the connection is closed in the middle of DATA
//	           stall          RCPT is never answered (client must time out)
//	sender     m553 m451      that reply to MAIL FROM
//
// maxRcpts > 0 answers 452 4.5.3 to RCPTs beyond that many per transaction.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	maxRcpts int
	dsn      bool          // advertise DSN
	delay    time.Duration // before each end-of-data reply (a slow server)
	noop     string        // reply to NOOP; "" = 250

	mu       sync.Mutex
	accepts  int
	open     int
	maxOpen  int
	messages []fakeMessage
	quits    int
	commands []string // "<connection number> <VERB>" for every command, in order
	helos    []string // every EHLO/HELO line as sent
	closed   chan struct{}
}

type fakeMessage struct {
	Mail string // the whole MAIL FROM line, with its parameters
	From string
	To   []string
	Data string
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake SMTP server: listen on 127.0.0.1: %v", err)
	}
	s := &fakeServer{t: t, ln: ln, closed: make(chan struct{})}
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *fakeServer) close() {
	s.mu.Lock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	s.ln.Close()
}

func (s *fakeServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepts++
		n := s.accepts
		s.open++
		s.maxOpen = max(s.maxOpen, s.open)
		s.mu.Unlock()
		go func() {
			s.session(c, n)
			c.Close()
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
		}()
	}
}

func (s *fakeServer) stats() (accepts, maxOpen int, msgs []fakeMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts, s.maxOpen, append([]fakeMessage(nil), s.messages...)
}

func behaviour(addr string) string {
	local := addr
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	if i := strings.IndexByte(local, '-'); i >= 0 {
		local = local[:i]
	}
	return local
}

// session speaks SMTP on c. Every reply carries an enhanced code (RFC 2034).
func (s *fakeServer) session(c net.Conn, conn int) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(line string) bool {
		w.WriteString(line + "\r\n")
		return w.Flush() == nil
	}
	if !reply("220 fake.test ESMTP scripted") {
		return
	}
	var from, mailLine string
	var rcpts []string
	inTx := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(line)
		s.mu.Lock()
		name, _, _ := strings.Cut(verb, " ")
		s.commands = append(s.commands, fmt.Sprintf("%d %s", conn, strings.TrimSuffix(name, ":")))
		s.mu.Unlock()
		if strings.HasPrefix(verb, "EHLO") || strings.HasPrefix(verb, "HELO") {
			s.mu.Lock()
			s.helos = append(s.helos, line)
			s.mu.Unlock()
		}
		switch {
		case strings.HasPrefix(verb, "EHLO"):
			ext := "250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
			if s.dsn {
				ext += "250-DSN\r\n"
			}
			reply(ext + "250 SIZE 10000000")
		case strings.HasPrefix(verb, "HELO"):
			reply("250 fake.test")
		case strings.HasPrefix(verb, "MAIL FROM:"):
			from = addrOf(line[len("MAIL FROM:"):])
			mailLine = line
			rcpts = nil
			switch behaviour(from) {
			case "m553":
				reply("553 5.1.8 sender address rejected")
				continue
			case "m451":
				reply("451 4.3.0 sender check unavailable, try later")
				continue
			}
			inTx = true
			reply("250 2.1.0 sender ok")
		case strings.HasPrefix(verb, "RCPT TO:"):
			to := addrOf(line[len("RCPT TO:"):])
			if !inTx {
				reply("503 5.5.1 need MAIL first")
				continue
			}
			if s.maxRcpts > 0 && len(rcpts) >= s.maxRcpts {
				reply("452 4.5.3 too many recipients")
				continue
			}
			switch behaviour(to) {
			case "r450":
				reply("450 4.2.1 mailbox busy, try later")
			case "r550":
				reply("550 5.1.1 no such user")
			case "r552":
				reply("552 5.2.2 mailbox full")
			case "r452":
				reply("452 4.2.2 mailbox over quota for now")
			case "stall":
				select {
				case <-s.closed:
				case <-time.After(30 * time.Second):
				}
				return
			default:
				rcpts = append(rcpts, to)
				reply("250 2.1.5 recipient ok")
			}
		case verb == "DATA":
			if !inTx || len(rcpts) == 0 {
				reply("503 5.5.1 no valid recipients")
				continue
			}
			reply("354 go ahead")
			var data strings.Builder
			drop := false
			for _, rc := range rcpts {
				if behaviour(rc) == "drop" {
					drop = true
				}
			}
			lines := 0
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				lines++
				if drop && lines == 2 {
					return // hang up mid-DATA
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			if s.delay > 0 {
				time.Sleep(s.delay)
			}
			final := "250 2.0.0 queued as fake"
			for _, rc := range rcpts {
				switch behaviour(rc) {
				case "d554":
					final = "554 5.6.0 content rejected"
				case "d451":
					final = "451 4.3.0 local error in processing"
				}
			}
			if strings.HasPrefix(final, "250") {
				s.mu.Lock()
				s.messages = append(s.messages, fakeMessage{Mail: mailLine, From: from, To: append([]string(nil), rcpts...), Data: data.String()})
				s.mu.Unlock()
			}
			inTx = false
			rcpts = nil
			reply(final)
		case verb == "RSET":
			inTx, rcpts = false, nil
			reply("250 2.0.0 reset")
		case verb == "NOOP":
			if s.noop != "" {
				reply(s.noop)
				if strings.HasPrefix(s.noop, "421") {
					return // RFC 5321 §3.8: 421 closes the channel
				}
				continue
			}
			reply("250 2.0.0 ok")
		case verb == "QUIT":
			s.mu.Lock()
			s.quits++
			s.mu.Unlock()
			reply("221 2.0.0 bye")
			return
		default:
			reply("500 5.5.2 unrecognised command")
		}
	}
}

// addrOf extracts the path from "<a@b> PARAMS".
func addrOf(arg string) string {
	arg = strings.TrimSpace(arg)
	if i := strings.IndexByte(arg, '>'); strings.HasPrefix(arg, "<") && i > 0 {
		return arg[1:i]
	}
	if i := strings.IndexByte(arg, ' '); i >= 0 {
		return arg[:i]
	}
	return arg
}
