package control

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"mailq/queue"
)

// NewLocalClient answers the control API from a store this process opened
// itself (boltstore.OpenReadOnly, when the daemon is stopped), over in-memory
// connections: the commands that read (list, show, cat, stats, summary)
// work unchanged; those that write fail in the store. There is no peer
// check: whoever could open the queue file may read it. close stops the
// in-process server; the caller closes the store.
func NewLocalClient(store queue.Store) (c *Client, close func()) {
	s := NewServer(ServerOptions{Store: store, Logger: zerolog.Nop()})
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	self := Peer{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	srv := &http.Server{
		Handler:     s.mux,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context { return context.WithValue(ctx, peerKey{}, self) },
	}
	go srv.Serve(ln)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			client, server := net.Pipe()
			select {
			case ln.conns <- server:
				return client, nil
			case <-ln.done:
				return nil, net.ErrClosed
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: "(queue file, read-only)", http: &http.Client{Transport: tr}}, func() {
		tr.CloseIdleConnections()
		srv.Close()
	}
}

// pipeListener hands the server the far ends of net.Pipe connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "in-process" }
