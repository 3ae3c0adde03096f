package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"mailq/control"
	"mailq/queue"
)

// summaryKeys are what summary can group by.
var summaryKeys = map[string]bool{"domain": true, "sender": true, "route": true}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "domain"
	}
	if !summaryKeys[by] {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("summary: unknown --by %q: use domain, sender or route", by))
		return
	}
	if by == "route" && s.opts.RouteFor == nil {
		writeError(w, http.StatusNotImplemented, "summary --by route is not available: this daemon has no routes wired to the control API")
		return
	}
	sum, err := s.summarize(r.Context(), by, s.opts.Now())
	if err != nil {
		s.writeStoreError(w, "", err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

// summarize walks the live queue once, counting each recipient still to do.
func (s *Server) summarize(ctx context.Context, by string, now time.Time) (control.Summary, error) {
	names := control.SummaryBucketNames()
	rows := map[string]*control.SummaryRow{}
	sum := control.Summary{By: by, Buckets: names, Total: control.SummaryRow{Key: "TOTAL", Counts: make([]int, len(names))}}
	err := s.opts.Store.List(queue.Filter{}, func(m *queue.Message) error {
		col := sort.Search(len(control.SummaryBuckets), func(i int) bool { return now.Sub(m.Arrival) < control.SummaryBuckets[i] })
		for _, rc := range m.Recipients {
			if rc.State.Done() {
				continue
			}
			key := s.summaryKey(by, m, rc.Address)
			row := rows[key]
			if row == nil {
				row = &control.SummaryRow{Key: key, Counts: make([]int, len(names))}
				rows[key] = row
			}
			row.Total++
			row.Counts[col]++
			sum.Total.Total++
			sum.Total.Counts[col]++
		}
		return ctx.Err()
	})
	if err != nil {
		return control.Summary{}, err
	}
	for _, row := range rows {
		sum.Rows = append(sum.Rows, *row)
	}
	sort.Slice(sum.Rows, func(i, j int) bool {
		if sum.Rows[i].Total != sum.Rows[j].Total {
			return sum.Rows[i].Total > sum.Rows[j].Total
		}
		return sum.Rows[i].Key < sum.Rows[j].Key
	})
	return sum, nil
}

func (s *Server) summaryKey(by string, m *queue.Message, rcpt string) string {
	switch by {
	case "sender":
		if m.Sender == "" {
			return "<>"
		}
		return strings.ToLower(domainOf(m.Sender))
	case "route":
		if name := s.opts.RouteFor(rcpt); name != "" {
			return name
		}
		return "(no route)"
	}
	return strings.ToLower(domainOf(rcpt))
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}
