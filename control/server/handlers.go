package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mailq/control"
	"mailq/intake"
	"mailq/intake/arrival"
	"mailq/metrics"
	"mailq/queue"
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	s.mux.HandleFunc("GET /v1/messages", s.handleList)
	s.mux.HandleFunc("GET /v1/messages/{id}", s.handleShow)
	s.mux.HandleFunc("GET /v1/messages/{id}/body", s.handleBody)
	s.mux.HandleFunc("GET /v1/stats", s.handleStats)
	s.mux.HandleFunc("GET /v1/summary", s.handleSummary)
	s.mux.HandleFunc("POST /v1/flush", s.handleFlush)
	s.mux.HandleFunc("POST /v1/retry", s.action("retry", bulk(s.opts.Store.MakeDueEach)))
	s.mux.HandleFunc("POST /v1/hold", s.action("hold", bulk(s.opts.Store.HoldEach)))
	s.mux.HandleFunc("POST /v1/release", s.action("release", bulk(s.opts.Store.ReleaseEach)))
	s.mux.HandleFunc("POST /v1/delete", s.action("delete", bulk(s.opts.Store.DeleteEach)))
	s.mux.HandleFunc("POST /v1/bounce", s.action("bounce", s.bounceEach))
	s.mux.HandleFunc("POST /v1/enqueue", s.handleEnqueue)
	s.eventRoutes()
	s.mux.HandleFunc("GET /v1/backup", s.handleBackup)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such control API endpoint: %s %s (is mailqctl newer than the daemon?)", r.Method, r.URL.Path))
	})
}

var validStatus = map[queue.Status]bool{"": true, queue.StatusQueued: true, queue.StatusActive: true,
	queue.StatusDeferred: true, queue.StatusHeld: true, queue.StatusDone: true}

// jsonLister is a store that can hand list its lines as stored
// (boltstore.Store.ListJSON), sparing a decode and an encode per message.
type jsonLister interface {
	ListJSON(f queue.Filter, fn func(line []byte) error) error
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sel := control.Selection{Status: q.Get("status"), From: q.Get("from"), To: q.Get("to"), Older: q.Get("older"), MessageID: q.Get("message_id")}
	f, err := selectionFilter(sel)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", control.ErrorTrailer)
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	line := func(b []byte) error {
		bw.Write(b)
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
		if n++; n%256 == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			http.NewResponseController(w).Flush()
		}
		return r.Context().Err()
	}
	if js, ok := s.opts.Store.(jsonLister); ok && sel.MessageID == "" {
		err = js.ListJSON(f, line)
	} else {
		err = s.opts.Store.List(f, func(m *queue.Message) error {
			if sel.MessageID != "" && !s.hasMessageID(m.ID, sel.MessageID) {
				return r.Context().Err()
			}
			m.Attempts = nil // list shows messages; show shows attempts
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			return line(b)
		})
	}
	bw.Flush()
	if err != nil {
		s.opts.Logger.Warn().Err(err).Msg("control list stopped early")
		w.Header().Set(control.ErrorTrailer, oneLine(err.Error()))
	}
}

// filter turns a selection into the store's filter; Message-ID is matched
// separately (hasMessageID), as the store does not index headers.
func selectionFilter(sel control.Selection) (queue.Filter, error) {
	f := queue.Filter{Status: queue.Status(sel.Status), Sender: sel.From, Recipient: sel.To}
	if !validStatus[f.Status] {
		return f, fmt.Errorf("unknown status %q: use queued, deferred, held, active or done", f.Status)
	}
	if sel.Older != "" {
		d, err := time.ParseDuration(sel.Older)
		if err != nil || d < 0 {
			return f, fmt.Errorf("bad --older %q: want a duration such as 30m or 2h", sel.Older)
		}
		f.OlderThan = d
	}
	return f, nil
}

// selected lists the ids of the messages sel matches, in id order.
func (s *Server) selected(ctx context.Context, sel control.Selection) ([]queue.ID, error) {
	f, err := selectionFilter(sel)
	if err != nil {
		return nil, err
	}
	var ids []queue.ID
	err = s.opts.Store.List(f, func(m *queue.Message) error {
		if sel.MessageID == "" || s.hasMessageID(m.ID, sel.MessageID) {
			ids = append(ids, m.ID)
		}
		return ctx.Err()
	})
	return ids, err
}

// handleBody streams the stored message as it will be sent (cat).
func (s *Server) handleBody(w http.ResponseWriter, r *http.Request) {
	id := queue.ID(r.PathValue("id"))
	body, err := s.opts.Store.Body(id)
	if err != nil {
		s.writeStoreError(w, id, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Trailer", control.ErrorTrailer)
	if _, err := io.Copy(w, body); err != nil && r.Context().Err() == nil {
		w.Header().Set(control.ErrorTrailer, oneLine(err.Error()))
	}
}

func (s *Server) handleShow(w http.ResponseWriter, r *http.Request) {
	id := queue.ID(r.PathValue("id"))
	m, err := s.opts.Store.Get(id)
	if err != nil {
		s.writeStoreError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, control.ShowReply{Message: m, Headers: s.headerSummary(id)})
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.opts.Store.Stats()
	if err != nil {
		s.writeStoreError(w, "", err)
		return
	}
	out := control.Stats{
		Queued: st.Queued, Active: st.Active, Deferred: st.Deferred, Held: st.Held, Live: st.Live,
		Done: st.Done, Damaged: st.Damaged, OldestAgeSeconds: int64(st.OldestAge / time.Second),
		DeliveredTotal: st.DeliveredTotal, BouncedTotal: st.BouncedTotal, DeferredTotal: st.DeferredTotal,
	}
	if s.opts.MaildropFailed != nil {
		out.MaildropFailed = s.opts.MaildropFailed()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleFlush(w http.ResponseWriter, r *http.Request) {
	n, err := s.opts.Store.Flush()
	if err != nil {
		s.writeStoreError(w, "", err)
		return
	}
	peer, _ := peerOf(r.Context())
	s.opts.Logger.Info().Int("messages", n).Uint32("uid", peer.UID).Msg("control: flush")
	writeJSON(w, http.StatusOK, control.ActionReply{Count: n})
}

// action serves one of the per-id commands: each id gets its own result,
// so one unknown id does not stop the others. The ids are applied in
// batches as they stream in (queue's *Each methods: one transaction per
// batch, not per id).
func (s *Server) action(name string, op func(context.Context, []queue.ID) []error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name == "bounce" && s.opts.Bounce == nil {
			writeError(w, http.StatusNotImplemented, "bounce is not available: this daemon has no delivery engine wired to the control API")
			return
		}
		if r.ContentLength > maxActionBody {
			writeError(w, http.StatusRequestEntityTooLarge, name+": "+errActionTooLarge.Error())
			return
		}
		peer, _ := peerOf(r.Context())
		var reply control.ActionReply
		var extra actionExtras
		apply := func(ids []queue.ID) error {
			var errs []error
			if extra.Recipients != "" {
				errs = make([]error, len(ids))
				for i, id := range ids {
					errs[i] = s.recipientsOp(r.Context(), name, id, extra.Recipients, peer)
				}
			} else {
				errs = op(r.Context(), ids)
			}
			for i, err := range errs {
				res := control.ActionResult{ID: ids[i]}
				switch {
				case err == nil:
					reply.Count++
					// One line per message touched, under the key every
					// other line about it uses, so its story can be
					// followed by id.
					s.opts.Logger.Info().Str("queue_id", string(ids[i])).Str("command", name).Uint32("uid", peer.UID).
						Msg("operator: " + name)
				case unchangedBy(name, err) != "":
					res.Unchanged = unchangedBy(name, err)
				default:
					res.Error = describeStoreError(ids[i], err)
				}
				reply.Results = append(reply.Results, res)
			}
			return r.Context().Err()
		}
		all, n, err := readActionRequest(r.Body, &extra, apply)
		if err == nil && extra.Recipients != "" && name != "delete" && name != "bounce" {
			err = fmt.Errorf("%s acts on whole messages: only delete and bounce take recipients", name)
		}
		if err == nil && extra.Select != nil {
			if all || n > 0 {
				err = fmt.Errorf("give message ids, a selection or all, not several")
			} else {
				var ids []queue.ID
				if ids, err = s.selected(r.Context(), *extra.Select); err == nil {
					for start := 0; start < len(ids) && err == nil; start += actionBatch {
						err = apply(ids[start:min(start+actionBatch, len(ids))])
					}
					if err == nil && len(ids) == 0 {
						writeJSON(w, http.StatusOK, control.ActionReply{})
						return
					}
					n = len(ids)
				}
			}
		}
		if err != nil {
			msg := "bad request body: " + err.Error()
			if errors.Is(err, errActionTooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: %s (the first %d ids were applied)", name, err, n))
				return
			}
			if n > 0 {
				msg += fmt.Sprintf(" (the first %d ids were applied)", n)
			}
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		switch {
		case all && name != "retry":
			writeError(w, http.StatusBadRequest, name+" does not take --all")
			return
		case all && n > 0:
			writeError(w, http.StatusBadRequest, "retry: give message ids or all, not both")
			return
		case all:
			count, err := s.opts.Store.MakeAllDue()
			if err != nil {
				s.writeStoreError(w, "", err)
				return
			}
			s.opts.Logger.Info().Str("command", name).Bool("all", true).Int("done", count).Uint32("uid", peer.UID).Msg("control: " + name)
			writeJSON(w, http.StatusOK, control.ActionReply{Count: count})
			return
		case n == 0:
			writeError(w, http.StatusBadRequest, name+": no message ids given")
			return
		}
		s.opts.Logger.Info().Str("command", name).Uint32("uid", peer.UID).Int32("pid", peer.PID).
			Int("asked", n).Int("done", reply.Count).Msg("control: " + name)
		writeJSON(w, http.StatusOK, reply)
	}
}

// bulk adapts a queue *Each method to action.
func bulk(op func([]queue.ID) []error) func(context.Context, []queue.ID) []error {
	return func(_ context.Context, ids []queue.ID) []error { return op(ids) }
}

// recipientsOp is delete or bounce of the recipients of id matching pattern.
func (s *Server) recipientsOp(ctx context.Context, name string, id queue.ID, pattern string, peer Peer) error {
	if name == "bounce" {
		if s.opts.BounceRecipients == nil {
			return errors.New("bounce of single recipients is not available in this daemon")
		}
		return s.opts.BounceRecipients(ctx, id, pattern)
	}
	removed, err := s.opts.Store.DeleteRecipients(id, pattern)
	if err == nil {
		s.opts.Logger.Info().Str("queue_id", string(id)).Strs("recipients", removed).Uint32("uid", peer.UID).
			Msg("operator: delete recipients")
	}
	return err
}

func (s *Server) bounceEach(ctx context.Context, ids []queue.ID) []error {
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = s.opts.Bounce(ctx, id)
	}
	return errs
}

// handleEnqueue takes the envelope line and streams the message into the
// store; the id is sent only after Store.Enqueue returned, i.e. after fsync.
func (s *Server) handleEnqueue(w http.ResponseWriter, r *http.Request) {
	source := r.URL.Query().Get("source")
	switch source {
	case "":
		source = "control"
	case "control", "sendmail":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown source %q: use control or sendmail", source))
		return
	}
	br := bufio.NewReaderSize(r.Body, 16<<10)
	line, err := readLine(br, control.MaxEnvelopeLine)
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the envelope line: "+err.Error())
		return
	}
	var env queue.Envelope
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		writeError(w, http.StatusBadRequest, "bad envelope: "+err.Error())
		return
	}
	env.Source = source
	if err := intake.ValidateEnvelope(&env); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limits := intake.Limits{MaxMessageSize: s.opts.MaxMessageSize, MaxRecipients: s.opts.MaxRecipients}
	if err := limits.CheckEnvelope(&env); err != nil {
		writeError(w, http.StatusBadRequest, "message refused: "+err.Error())
		return
	}
	peer, _ := peerOf(r.Context())
	received := intake.Received(fmt.Sprintf("local (uid %d)", peer.UID), s.opts.Hostname, source, "", s.opts.Now())
	body := limits.Body(br)
	msg := arrival.NewReader(io.MultiReader(strings.NewReader(received), body))
	id, err := s.opts.Store.Enqueue(env, msg)
	if err != nil {
		switch {
		case errors.Is(err, intake.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("message refused: larger than max_message_size (%d bytes)", s.opts.MaxMessageSize))
			return
		case errors.Is(err, intake.ErrHeaderTooLarge), errors.Is(err, intake.ErrLineTooLong), errors.Is(err, intake.ErrEmptyMessage):
			writeError(w, http.StatusBadRequest, "message refused: "+limitReason(err))
			return
		}
		s.opts.Logger.Error().Err(err).Str("source", source).Msg("control enqueue failed")
		writeError(w, http.StatusInternalServerError, "message not stored: "+err.Error())
		return
	}
	// Durable: answer now, complete, and log after, so the caller (a
	// sendmail process waiting to exit) does not wait for the log line and
	// its user-name lookup.
	writeJSON(w, http.StatusOK, control.EnqueueReply{ID: id})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	metrics.Enqueued.WithLabelValues(source).Inc()
	arrival.Log(s.opts.Logger.With().Uint32("uid", peer.UID).Logger(), arrival.Record{ID: id, Env: env,
		Client: fmt.Sprintf("local (uid %d, pid %d)", peer.UID, peer.PID), User: intake.UserName(peer.UID), Body: msg})
}

// readLine reads up to and excluding '\n', refusing lines longer than max.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return bytes.TrimRight(line, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, errors.New("the request ended before the envelope line did")
		default:
			return nil, err
		}
	}
}

// unchangedBy says why an action left a message as it was, when that is
// not a failure: the operator's wish already holds, or waits for a release.
func unchangedBy(action string, err error) string {
	switch {
	case action == "retry" && errors.Is(err, queue.ErrHeld):
		return "held: not retried (release it to let it go)"
	case action == "hold" && errors.Is(err, queue.ErrHeld):
		return "already held"
	case action == "release" && errors.Is(err, queue.ErrNotHeld):
		return "not held: nothing to release"
	}
	return ""
}

// describeStoreError is the per-id error text; the CLI prints it after
// "COMMAND ID: ", so it names neither again.
func describeStoreError(id queue.ID, err error) string {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return "no such message"
	case errors.Is(err, queue.ErrDone):
		return "message is done (delivered or bounced): nothing left to act on"
	case errors.Is(err, queue.ErrClosed):
		return "the queue is closed: the daemon is shutting down"
	case errors.Is(err, queue.ErrNoRecipient):
		return "no recipient still to do matches"
	}
	// Store errors name the operation and the id ("queue: hold X: …");
	// keep only the reason.
	msg := err.Error()
	if i := strings.LastIndex(msg, string(id)+": "); i >= 0 {
		msg = msg[i+len(id)+2:]
	}
	return msg
}

func (s *Server) writeStoreError(w http.ResponseWriter, id queue.ID, err error) {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such message: %s", id))
	case errors.Is(err, queue.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "the queue is closed: the daemon is shutting down")
	case errors.Is(err, queue.ErrBodyDropped):
		writeError(w, http.StatusGone, fmt.Sprintf("message %s is done (delivered or bounced): its body was dropped when it finished; `mailqctl show %s` has its record", id, id))
	default:
		s.opts.Logger.Error().Err(err).Msg("control: store error")
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// writeJSON answers v with its length, so that a flushed answer is
// complete for the client before the handler returns.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	data = append(data, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	w.Write(data)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, control.ErrorReply{Error: msg})
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// limitReason is the intake limit error without the queue's wrapping.
func limitReason(err error) string {
	for _, e := range []error{intake.ErrHeaderTooLarge, intake.ErrLineTooLong, intake.ErrEmptyMessage} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
