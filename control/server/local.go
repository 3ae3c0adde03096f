package server

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/rs/zerolog"

	"mailq/queue"
)

// ServeConn answers the control API on conn alone, from a store this
// process opened itself (boltstore.OpenReadOnly, when the daemon is stopped),
// until the other end closes it: `mailq read-queue` serves mailqctl this
// way over its standard input and output, so mailqctl links no store. The
// commands that read (list, show, cat, stats, summary) work unchanged;
// those that write fail in the store. There is no peer check: whoever
// could open the queue file may read it.
func ServeConn(store queue.Store, conn net.Conn) {
	s := New(Options{Store: store, Logger: zerolog.Nop()})
	ln := &oneConnListener{conn: make(chan net.Conn, 1), done: make(chan struct{}), addr: conn.LocalAddr()}
	ln.conn <- conn
	self := Peer{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	closed := make(chan struct{})
	var once sync.Once
	srv := &http.Server{
		Handler:     s.mux,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context { return context.WithValue(ctx, peerKey{}, self) },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				once.Do(func() { close(closed) })
			}
		},
	}
	go srv.Serve(ln)
	<-closed
	srv.Close()
}

// oneConnListener hands the server one connection, then waits until closed.
type oneConnListener struct {
	conn chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr // the one connection's
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conn:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }
