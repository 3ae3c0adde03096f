package server

// The event log, webhooks and suppression list endpoints:
//
//	GET    /v1/events?after=ID&since=T&follow=1   JSON Lines of events.Event (follow: keeps streaming)
//	GET    /v1/webhooks                          []events.WebhookStatus
//	GET    /v1/suppression                       JSON Lines of control.SuppressionEntry
//	GET    /v1/suppression/{addr}                control.SuppressionEntry, 404 when not suppressed
//	POST   /v1/suppression                       control.SuppressionAdd -> control.SuppressionEntry
//	DELETE /v1/suppression/{addr}                control.ActionReply (Count 1 when it was listed)

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"mailq/control"
	"mailq/events"
	"mailq/queue"
)

// streams ends long-lived streams (events --follow) when the server shuts
// down, so they do not hold its drain for shutdownWait.
type streams struct {
	once, closed sync.Once
	done         chan struct{}
}

func (st *streams) init()  { st.once.Do(func() { st.done = make(chan struct{}) }) }
func (st *streams) close() { st.init(); st.closed.Do(func() { close(st.done) }) }

func (s *Server) eventRoutes() {
	s.streams.init()
	s.mux.HandleFunc("GET /v1/events", s.handleEvents)
	s.mux.HandleFunc("GET /v1/webhooks", s.handleWebhooks)
	s.mux.HandleFunc("GET /v1/suppression", s.handleSuppressionList)
	s.mux.HandleFunc("GET /v1/suppression/{addr}", s.handleSuppressionCheck)
	s.mux.HandleFunc("POST /v1/suppression", s.handleSuppressionAdd)
	s.mux.HandleFunc("DELETE /v1/suppression/{addr}", s.handleSuppressionRemove)
}

// parseSince accepts an RFC 3339 time or a duration ago ("30m").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("bad --since %q: want a time such as 2026-01-02T15:04:05Z or a duration such as 30m", v)
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	store := s.opts.Store
	var after uint64
	var err error
	switch {
	case q.Get("after") != "":
		after, err = strconv.ParseUint(q.Get("after"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bad after %q: want an event id", q.Get("after")))
			return
		}
	case q.Get("since") != "":
		since, err := parseSince(q.Get("since"), s.opts.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if after, err = store.EventSeqBefore(since); err != nil {
			s.writeStoreError(w, "", err)
			return
		}
	case q.Get("follow") != "":
		// Following without a start shows what happens from now on.
		if after, err = store.LastEventSeq(); err != nil {
			s.writeStoreError(w, "", err)
			return
		}
	}
	follow := q.Get("follow") != ""
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", control.ErrorTrailer)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	flush := func() {
		bw.Flush()
		http.NewResponseController(w).Flush()
	}
	for {
		changed := store.EventsChanged()
		evs, err := store.Events(after, 1024)
		if err != nil {
			flush()
			w.Header().Set(control.ErrorTrailer, oneLine(err.Error()))
			return
		}
		for _, ev := range evs {
			after = ev.Seq
			bw.Write(events.Encode(ev))
			bw.WriteByte('\n')
		}
		if len(evs) > 0 {
			flush()
			continue
		}
		if !follow {
			flush()
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-s.streams.done:
			return
		}
	}
}

func (s *Server) handleWebhooks(w http.ResponseWriter, r *http.Request) {
	var out []events.WebhookStatus
	if s.opts.Webhooks != nil {
		out = s.opts.Webhooks()
	}
	if out == nil {
		out = []events.WebhookStatus{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) suppressionOff(w http.ResponseWriter) bool {
	if s.opts.Suppression == nil {
		writeError(w, http.StatusNotImplemented, "this daemon has no suppression list")
		return true
	}
	return false
}

func (s *Server) entry(e queue.Suppression) control.SuppressionEntry {
	return control.SuppressionEntry{Suppression: e, Expires: s.opts.Suppression.Expires(e)}
}

func (s *Server) handleSuppressionList(w http.ResponseWriter, r *http.Request) {
	if s.suppressionOff(w) {
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", control.ErrorTrailer)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err := s.opts.Suppression.List(func(e queue.Suppression) error { return enc.Encode(s.entry(e)) })
	bw.Flush()
	if err != nil {
		w.Header().Set(control.ErrorTrailer, oneLine(err.Error()))
	}
}

func (s *Server) handleSuppressionCheck(w http.ResponseWriter, r *http.Request) {
	if s.suppressionOff(w) {
		return
	}
	addr := r.PathValue("addr")
	e, ok, err := s.opts.Suppression.Lookup(addr)
	if err != nil {
		s.writeStoreError(w, "", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not suppressed", addr))
		return
	}
	writeJSON(w, http.StatusOK, s.entry(e))
}

func (s *Server) handleSuppressionAdd(w http.ResponseWriter, r *http.Request) {
	if s.suppressionOff(w) {
		return
	}
	var req control.SuppressionAdd
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return
	}
	req.Address = strings.TrimSpace(req.Address)
	if err := s.opts.Suppression.Add(req.Address, req.Reason); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	e, _, err := s.opts.Suppression.Lookup(req.Address)
	if err != nil {
		s.writeStoreError(w, "", err)
		return
	}
	s.opts.Logger.Info().Str("address", req.Address).Msg("control: added to the suppression list")
	writeJSON(w, http.StatusOK, s.entry(e))
}

func (s *Server) handleSuppressionRemove(w http.ResponseWriter, r *http.Request) {
	if s.suppressionOff(w) {
		return
	}
	addr := r.PathValue("addr")
	found, err := s.opts.Suppression.Remove(addr)
	if err != nil {
		s.writeStoreError(w, "", err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not on the suppression list", addr))
		return
	}
	s.opts.Logger.Info().Str("address", addr).Msg("control: removed from the suppression list")
	writeJSON(w, http.StatusOK, control.ActionReply{Count: 1})
}
