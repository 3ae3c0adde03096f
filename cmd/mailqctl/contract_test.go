package main

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"mailq/control/server"
	"mailq/queue"
)

// contractSample is the JSON sample of docs/cli.md ("JSON"), verbatim:
// every key in it is a promise to scripts.
const contractSample = `{"id": "…", "status": "deferred", "sender": "a@example.com", "size": 4096,
 "arrival": "2026-11-26T05:00:00Z", "next_attempt": "2026-11-26T05:05:00Z", "held": false,
 "envid": "…", "ret": "HDRS",
 "recipients": [{"address": "b@example.org", "state": "deferred", "attempts": 1, "notify": "FAILURE",
                 "orcpt": "", "next_attempt": "2026-11-26T05:05:00Z",
                 "last_reply": {"code": 450, "enhanced": "4.2.1", "text": "try later"}}],
 "attempts": [{"time": "…", "route": "relay", "remote": "192.0.2.1:587", "tls": "TLS1.3",
               "duration_ms": 120, "recipients": ["b@example.org"],
               "replies": [{"command": "RCPT TO:<b@example.org>", "code": 450, "enhanced": "4.2.1", "text": "try later"}],
               "transcript": ["…"]}]}`

// keyPaths lists every key path of a decoded JSON value ("attempts[].replies[].command"),
// looking into the first element of each array.
func keyPaths(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = jsonKind(e)
			keyPaths(p, e, out)
		}
	case []any:
		if len(x) > 0 {
			keyPaths(prefix+"[]", x[0], out)
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

func decodeObject(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, text)
	}
	return m
}

// TestJSONFieldsMatchTheContract checks list --json and show --json against
// the sample of docs/cli.md: every key path, with the sample's type.
func TestJSONFieldsMatchTheContract(t *testing.T) {
	d := startDaemon(t, server.Options{})
	id := strings.TrimSpace(d.mustCtl(t, "Subject: x\r\n\r\nbody\r\n", "enqueue", "--from", "a@example.com",
		"--to", "b@example.org", "--notify", "failure", "--ret", "hdrs", "--envid", "env-1"))
	leases, err := d.store.Lease(time.Now().Add(time.Second), 10)
	if err != nil || len(leases) != 1 {
		t.Fatalf("lease: %v, %d leases", err, len(leases))
	}
	reply := &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "try later"}
	at := queue.Attempt{Time: time.Now(), Route: "relay", Remote: "127.0.0.1:2525", TLS: "TLS1.3", DurationMS: 120,
		Recipients: []string{"b@example.org"},
		Replies:    []queue.StepReply{{Command: "RCPT TO:<b@example.org>", Reply: *reply}},
		Transcript: []string{"C: RCPT TO:<b@example.org>", "S: 450 4.2.1 try later"}}
	if err := d.store.RecordOutcome(leases[0], at, []queue.Outcome{{Recipient: "b@example.org",
		Decision: queue.DecideRetry, RetryAt: time.Now().Add(5 * time.Minute), Reply: reply}}); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{}
	keyPaths("", decodeObject(t, contractSample), want)
	show, list := map[string]string{}, map[string]string{}
	keyPaths("", decodeObject(t, d.mustCtl(t, "", "show", "--json", id)), show)
	keyPaths("", decodeObject(t, d.mustCtl(t, "", "list", "--json")), list)

	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if got, ok := show[p]; !ok || got != want[p] {
			t.Errorf("show --json: %s is %q, want a %s as in docs/cli.md", p, got, want[p])
		}
		if strings.HasPrefix(p, "attempts") {
			if _, ok := list[p]; ok {
				t.Errorf("list --json has %s; attempts are show's alone", p)
			}
			continue
		}
		if got, ok := list[p]; !ok || got != want[p] {
			t.Errorf("list --json: %s is %q, want a %s as in docs/cli.md", p, got, want[p])
		}
	}
}

// TestShowJSONListsAreNeverMissing: before the first attempt show --json
// still has "attempts": [], and an attempt without a transcript or replies
// (a refused connection) has empty lists, not missing keys or null.
func TestShowJSONListsAreNeverMissing(t *testing.T) {
	d := startDaemon(t, server.Options{})
	fresh := d.enqueue(t, "a@example.com", "b@example.org")
	m := decodeObject(t, d.mustCtl(t, "", "show", "--json", string(fresh)))
	if a, ok := m["attempts"].([]any); !ok || len(a) != 0 {
		t.Errorf("fresh message: attempts = %#v, want []", m["attempts"])
	}

	tried := d.enqueue(t, "a@example.com", "c@example.org")
	leases, err := d.store.Lease(time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.Message.ID != tried {
			continue
		}
		at := queue.Attempt{Time: time.Now(), Route: "relay", Remote: "127.0.0.1:25"}
		if err := d.store.RecordOutcome(l, at, []queue.Outcome{{Recipient: "c@example.org",
			Decision: queue.DecideRetry, RetryAt: time.Now().Add(time.Minute)}}); err != nil {
			t.Fatal(err)
		}
	}
	m = decodeObject(t, d.mustCtl(t, "", "show", "--json", string(tried)))
	ats, _ := m["attempts"].([]any)
	if len(ats) != 1 {
		t.Fatalf("attempts = %#v, want one", m["attempts"])
	}
	for _, k := range []string{"recipients", "replies", "transcript"} {
		if l, ok := ats[0].(map[string]any)[k].([]any); !ok || len(l) != 0 {
			t.Errorf("attempt %s = %#v, want []", k, ats[0].(map[string]any)[k])
		}
	}
}

// TestContractSampleIsTheDocumentedOne keeps docs/cli.md's sample and the
// one tested above the same text.
func TestContractSampleIsTheDocumentedOne(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```json\n"+contractSample+"\n```") {
		t.Error("docs/cli.md's JSON sample differs from contractSample")
	}
}
