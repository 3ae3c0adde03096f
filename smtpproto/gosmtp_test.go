package smtpproto

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// End to end against emersion/go-smtp as an in-process server.

type gsMsg struct {
	from  string
	rcpts []string
	body  string
}

type gsBackend struct {
	mu   sync.Mutex
	msgs []gsMsg
}

func (b *gsBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &gsSession{b: b}, nil }

type gsSession struct {
	b   *gsBackend
	cur gsMsg
}

func (s *gsSession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *gsSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	return nil
}
func (s *gsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.body = string(b)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	s.cur = gsMsg{}
	return nil
}
func (s *gsSession) Reset()        { s.cur = gsMsg{} }
func (s *gsSession) Logout() error { return nil }

func startGoSMTP(t testing.TB, maxRcpts int) (*gsBackend, int) {
	be := &gsBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "gosmtp.test"
	srv.MaxRecipients = maxRcpts
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return be, ln.Addr().(*net.TCPAddr).Port
}

func TestGoSMTPEndToEndSeveralMessages(t *testing.T) {
	cases := []struct {
		name      string
		chunksize int
	}{{"DATA", 0}, {"BDAT chunksize 64", 64}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, port := startGoSMTP(t, 2)
			s := &Settings{Name: "gosmtp", Host: "127.0.0.1", Port: port, Localhost: "client.test", ChunkSize: tc.chunksize, SendPartial: true}
			c, err := Dial(context.Background(), s, DialOptions{Transcript: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			bodies := []string{
				"Subject: one\r\n\r\n.leading dot\r\nline\r\n",
				"Subject: two\n\nbare LF\n.\nend",
				"Subject: three\r\n\r\n" + strings.Repeat("0123456789", 30) + "\r\n",
			}
			for i, body := range bodies {
				env := env1("sender@x.test", "a@y.test", "b@y.test", "nobody@y.test", "c@y.test")
				res, err := c.Send(context.Background(), env, strings.NewReader(body))
				delivered := 0
				for _, r := range res.Recipients {
					if r.Delivered {
						delivered++
					}
				}
				if delivered != 3 || res.Recipients[2].Final == nil || res.Recipients[2].Final.Code != 550 {
					t.Fatalf("message %d: err = %v, result %+v", i, err, res.Recipients)
				}
				if err := c.Reset(); err != nil {
					t.Fatal(err)
				}
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			// MaxRecipients 2: every message took two transactions.
			if len(be.msgs) != 6 {
				t.Fatalf("server got %d transactions, want 6", len(be.msgs))
			}
			want := []string{
				"Subject: one\r\n\r\n.leading dot\r\nline\r\n",
				"Subject: two\r\n\r\nbare LF\r\n.\r\nend\r\n",
				bodies[2],
			}
			for i, m := range be.msgs {
				if m.body != want[i/2] {
					t.Errorf("transaction %d body %q, want %q", i, m.body, want[i/2])
				}
			}
			if !slices.Equal(be.msgs[0].rcpts, []string{"a@y.test", "b@y.test"}) || !slices.Equal(be.msgs[1].rcpts, []string{"c@y.test"}) {
				t.Fatalf("recipient split %q / %q", be.msgs[0].rcpts, be.msgs[1].rcpts)
			}
		})
	}
}
