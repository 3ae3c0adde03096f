package control

import (
	"fmt"
	"time"
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
