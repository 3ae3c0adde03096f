package control

import (
	"bufio"
	"errors"
	"io"
	"net"
	"time"
)

// ReadQueueReady starts the line `mailq read-queue` writes on its standard
// output (followed by the queue file's path) once the queue file is open,
// before it speaks the control API there; mailqctl waits for it.
const ReadQueueReady = "mailq read-queue: ready"

// PipeConn makes a connection of a reader and a writer (a child process's
// standard output and input, or this process's own standard input and
// output), for the control API spoken over pipes. Deadlines are not
// supported and are ignored: the other end is a process, and closing the
// pipes ends it.
func PipeConn(r io.ReadCloser, w io.WriteCloser) net.Conn { return &pipeConn{r: r, w: w} }

type pipeConn struct {
	r io.ReadCloser
	w io.WriteCloser
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeConn) Close() error {
	werr := p.w.Close()
	return errors.Join(werr, p.r.Close())
}
func (p *pipeConn) LocalAddr() net.Addr              { return pipeAddr{} }
func (p *pipeConn) RemoteAddr() net.Addr             { return pipeAddr{} }
func (p *pipeConn) SetDeadline(time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(time.Time) error { return nil }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// NewConnClient returns a client whose requests all go, one after
// another, over conn (e.g. a PipeConn to `mailq read-queue`); name says in
// errors what it talks to. The caller closes conn when done.
func NewConnClient(name string, nc net.Conn) *Client {
	shared := make(chan *conn, 1)
	shared <- &conn{Conn: nc, br: bufio.NewReaderSize(nc, 32<<10)}
	return &Client{socket: name, shared: shared}
}
