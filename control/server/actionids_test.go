package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"mailq/control"
	"mailq/queue"
)

// FuzzReadActionRequest: the streaming decoder never panics, reports as
// read exactly the ids it handed on, and where encoding/json reads the same
// request whole (one "ids" key, spelled so), it yields the same ids and all.
func FuzzReadActionRequest(f *testing.F) {
	for _, s := range []string{`{"ids":["a","b"],"all":false}`, `{"ids":null,"all":true}`, `{"all":true,"ids":[]}`,
		`{"ids":["0000000000000001"],"x":{"y":[1,2]}}`, `{"ids":[1]}`, `{`, `[]`, `{"ids":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got []queue.ID
		all, n, err := readActionRequest(strings.NewReader(string(body)), &actionExtras{}, func(ids []queue.ID) error {
			got = append(got, ids...)
			return nil
		})
		if n != len(got) {
			t.Fatalf("reported %d ids read, handed on %d", n, len(got))
		}
		if err != nil || strings.Count(strings.ToLower(string(body)), `"ids"`) != 1 || !strings.Contains(string(body), `"ids"`) ||
			strings.Count(strings.ToLower(string(body)), `"all"`) > 1 || (strings.Contains(strings.ToLower(string(body)), `"all"`) && !strings.Contains(string(body), `"all"`)) {
			return
		}
		var whole control.ActionRequest
		if json.Unmarshal(body, &whole) != nil {
			return
		}
		if !slices.Equal(got, whole.IDs) && !(len(got) == 0 && len(whole.IDs) == 0) || all != whole.All {
			t.Fatalf("streamed ids %q all %v; encoding/json reads %q all %v", got, all, whole.IDs, whole.All)
		}
	})
}
