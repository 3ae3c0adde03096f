package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"mailq/queue"
)

// ErrUnreachable means the daemon could not be reached on its socket
// (not running, wrong --socket, or no permission on the socket file).
// mailqctl exits 3 on it; sendmail falls back to the maildrop.
var ErrUnreachable = errors.New("mailq daemon not reachable")

// APIError is a refusal or failure the daemon answered with.
type APIError struct {
	Status  int    // HTTP status: 400 bad request, 403 not allowed, 404 unknown id, 413 too large...
	Message string // the daemon's explanation
}

func (e *APIError) Error() string { return e.Message }

// Client calls the control API over a unix socket (wire.go).
type Client struct {
	socket string
	// dial opens a connection for one request; unused when shared is set.
	dial func(ctx context.Context) (net.Conn, error)
	// shared holds the one connection of NewConnClient between requests
	// (nil once it broke).
	shared chan *conn
}

// NewClient returns a client for the daemon listening on socketPath.
func NewClient(socketPath string) *Client {
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", socketPath)
		if err != nil {
			return nil, &unreachableError{socket: socketPath, err: err}
		}
		return c, nil
	}
	return &Client{socket: socketPath, dial: dial}
}

type unreachableError struct {
	socket string
	err    error
}

func (e *unreachableError) Error() string {
	if errors.Is(e.err, syscall.EACCES) || errors.Is(e.err, syscall.EPERM) {
		// The daemon may well be running: the socket is not ours to open.
		return fmt.Sprintf("permission denied on the mailq control socket %s: only root, the daemon's user and members of the socket's group (normally mailq) may use it; ask an administrator to add you to that group", e.socket)
	}
	return fmt.Sprintf("mailq daemon not reachable on %s: %v (is mailq running? is --socket or the configuration's control.socket right?)", e.socket, e.err)
}
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.err }

// do sends a request and decodes a 2xx JSON answer into out (when non-nil).
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, err := c.send(ctx, method, path, r, int64(len(body)))
	if err != nil {
		return err
	}
	defer resp.Close()
	if out == nil {
		if _, err := io.Copy(io.Discard, resp); err != nil {
			return fmt.Errorf("reading the daemon's answer to %s %s: %w", method, path, err)
		}
		return nil
	}
	if err := json.NewDecoder(resp).Decode(out); err != nil {
		return fmt.Errorf("reading the daemon's answer to %s %s: %w", method, path, err)
	}
	io.Copy(io.Discard, resp) // the rest (a newline), so the connection may be reused
	return nil
}

// send returns an answer with a 2xx status; other statuses become
// *APIError. length is body's (-1: unknown, sent chunked).
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, length int64) (*response, error) {
	resp, err := c.roundTrip(ctx, method, path, body, length)
	if err != nil {
		var ue *unreachableError
		if errors.As(err, &ue) {
			return nil, ue
		}
		return nil, err
	}
	if resp.status/100 != 2 {
		defer resp.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

// apiError reads a refusal or failure the daemon answered with.
func apiError(resp *response) *APIError {
	var er ErrorReply
	data, _ := io.ReadAll(io.LimitReader(resp, 64<<10))
	if json.Unmarshal(data, &er) != nil || er.Error == "" {
		er.Error = fmt.Sprintf("daemon answered %s: %s", resp.line, strings.TrimSpace(string(data)))
	}
	return &APIError{Status: resp.status, Message: er.Error}
}

// Ping checks that the daemon answers and lets this user in.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, "GET", APIPrefix+"ping", nil, nil)
}

// List streams the messages matching f to fn, in id order.
func (c *Client) List(ctx context.Context, f queue.Filter, fn func(*queue.Message) error) error {
	sel := Selection{Status: string(f.Status), From: f.Sender, To: f.Recipient}
	if f.OlderThan > 0 {
		sel.Older = f.OlderThan.String()
	}
	return c.ListSelection(ctx, sel, fn)
}

// ListSelection streams the messages sel matches to fn, in id order.
func (c *Client) ListSelection(ctx context.Context, sel Selection, fn func(*queue.Message) error) error {
	return c.ListLines(ctx, sel, func(line []byte) error {
		var m queue.Message
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("reading the message list: %w", err)
		}
		return fn(&m)
	})
}

// ListLines streams the daemon's JSON line for each message sel matches
// to fn as it arrives, undecoded (list --json passes them through); the
// line is only valid during the call.
func (c *Client) ListLines(ctx context.Context, sel Selection, fn func(line []byte) error) error {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", sel.Status)
	set("from", sel.From)
	set("to", sel.To)
	set("older", sel.Older)
	set("message_id", sel.MessageID)
	resp, err := c.send(ctx, "GET", APIPrefix+"messages?"+q.Encode(), nil, 0)
	if err != nil {
		return err
	}
	defer resp.Close()
	sc := bufio.NewScanner(resp)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the message list: %w", err)
	}
	if msg := resp.Trailer(ErrorTrailer); msg != "" {
		return &APIError{Status: 500, Message: "the list is incomplete: " + msg}
	}
	return nil
}

// Show returns one message with its attempts and header summary.
func (c *Client) Show(ctx context.Context, id queue.ID) (*ShowReply, error) {
	r := &ShowReply{Message: &queue.Message{}}
	if err := c.do(ctx, "GET", APIPrefix+"messages/"+url.PathEscape(string(id)), nil, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Body streams the stored message id as it will be sent; the caller closes
// it. An error the daemon met after the stream began is returned at EOF.
func (c *Client) Body(ctx context.Context, id queue.ID) (io.ReadCloser, error) {
	resp, err := c.send(ctx, "GET", APIPrefix+"messages/"+url.PathEscape(string(id))+"/body", nil, 0)
	if err != nil {
		return nil, err
	}
	return &trailerChecked{resp: resp}, nil
}

// trailerChecked turns the error trailer of a streamed answer into the
// error of its last Read.
type trailerChecked struct{ resp *response }

func (t *trailerChecked) Read(p []byte) (int, error) {
	n, err := t.resp.Read(p)
	if errors.Is(err, io.EOF) {
		if msg := t.resp.Trailer(ErrorTrailer); msg != "" {
			return n, &APIError{Status: 500, Message: "the message is incomplete: " + msg}
		}
	}
	return n, err
}

func (t *trailerChecked) Close() error { return t.resp.Close() }

// Summary counts the recipients still to do by domain, sender or route,
// and by age (qshape).
func (c *Client) Summary(ctx context.Context, by string) (Summary, error) {
	var s Summary
	err := c.do(ctx, "GET", APIPrefix+"summary?by="+url.QueryEscape(by), nil, &s)
	return s, err
}

// Stats returns the queue's counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.do(ctx, "GET", APIPrefix+"stats", nil, &st)
	return st, err
}

// Flush makes every deferred message due now and returns how many.
func (c *Client) Flush(ctx context.Context) (int, error) {
	var r ActionReply
	err := c.do(ctx, "POST", APIPrefix+"flush", nil, &r)
	return r.Count, err
}

// Action runs retry, hold, release, delete or bounce on ids (all: retry
// every live message). Per-id failures are in the reply, not the error.
func (c *Client) Action(ctx context.Context, command string, ids []queue.ID, all bool) (ActionReply, error) {
	return c.ActionRequest(ctx, command, ActionRequest{IDs: ids, All: all})
}

// ActionRequest runs retry, hold, release, delete or bounce as req says.
func (c *Client) ActionRequest(ctx context.Context, command string, req ActionRequest) (ActionReply, error) {
	var r ActionReply
	data, err := json.Marshal(req)
	if err != nil {
		return r, err
	}
	err = c.do(ctx, "POST", APIPrefix+url.PathEscape(command), data, &r)
	return r, err
}

// Enqueue streams a message to the daemon; the id comes back only once the
// message is durable. source is "control" or "sendmail".
func (c *Client) Enqueue(ctx context.Context, env queue.Envelope, body io.Reader, source string) (queue.ID, error) {
	line := append(appendEnvelope(nil, env), '\n')
	var r EnqueueReply
	path := APIPrefix + "enqueue?source=" + url.QueryEscape(source)
	resp, err := c.send(ctx, "POST", path, filledReads{io.MultiReader(bytes.NewReader(line), body)}, -1)
	if err != nil {
		return "", err
	}
	defer resp.Close()
	if err := json.NewDecoder(resp).Decode(&r); err != nil {
		return "", fmt.Errorf("reading the daemon's answer to enqueue: %w", err)
	}
	if r.ID == "" {
		return "", errors.New("the daemon answered enqueue without an id")
	}
	return r.ID, nil
}

// filledReads fills each Read as far as its source allows: until p is
// full, the end or an error. The transport sends each Read of a body of
// unknown length as a chunk with a write of its own, each waking the
// daemon, and a message read from a pipe comes a line at a time (a 4 KiB
// message was some 55 writes). The source is still read only once the
// request is being sent, so a client that cannot connect has read nothing
// (sendmail then keeps the message in the maildrop).
type filledReads struct{ r io.Reader }

func (f filledReads) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
