package control

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"mailq/queue"
)

// SummaryBuckets are the age columns of summary, as Postfix's qshape has
// them: a recipient counts in the first column whose bound its message's
// age is under; the last one takes the rest.
var SummaryBuckets = []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute,
	80 * time.Minute, 160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute}

// SummaryBucketNames labels the columns: "5m" … "1280m", then "1280m+".
func SummaryBucketNames() []string {
	var out []string
	for _, b := range SummaryBuckets {
		out = append(out, fmt.Sprintf("%dm", int(b/time.Minute)))
	}
	return append(out, out[len(out)-1]+"+")
}

// SummaryRow is the recipients still to do for one key, by age.
type SummaryRow struct {
	Key    string `json:"key"`
	Total  int    `json:"total"`
	Counts []int  `json:"counts"` // one per bucket
}

// Summary is summary's answer (GET /v1/summary?by=domain|sender|route):
// recipients still to do, by key and by the age of their message.
type Summary struct {
	By      string       `json:"by"`
	Buckets []string     `json:"buckets"`
	Total   SummaryRow   `json:"total"`
	Rows    []SummaryRow `json:"rows"`
}

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
func (s *Server) summarize(ctx context.Context, by string, now time.Time) (Summary, error) {
	names := SummaryBucketNames()
	rows := map[string]*SummaryRow{}
	sum := Summary{By: by, Buckets: names, Total: SummaryRow{Key: "TOTAL", Counts: make([]int, len(names))}}
	err := s.opts.Store.List(queue.Filter{}, func(m *queue.Message) error {
		col := sort.Search(len(SummaryBuckets), func(i int) bool { return now.Sub(m.Arrival) < SummaryBuckets[i] })
		for _, rc := range m.Recipients {
			if rc.State.Done() {
				continue
			}
			key := s.summaryKey(by, m, rc.Address)
			row := rows[key]
			if row == nil {
				row = &SummaryRow{Key: key, Counts: make([]int, len(names))}
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
		return Summary{}, err
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
