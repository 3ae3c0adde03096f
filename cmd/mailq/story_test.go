package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMessageStoryInTheLog (issue 12 item 3): the daemon's JSON log,
// filtered by one queue_id as `jq 'select(.queue_id=="…")'` would, tells
// the message's whole story: its arrival (client, user, sender, size,
// recipient count, Message-ID, intake path), each recipient accepted, each
// decision, the DSN it caused under the DSN's own id, the operator's retry
// with the caller's uid, and its removal.
func TestMessageStoryInTheLog(t *testing.T) {
	sink := startOpsSink(t, "story", false)
	dir := t.TempDir()
	cfg := testConfig(t, dir, sinkRoute(sink.port)+"reportsuccess = true\n")
	d, _ := startOpsDaemon(t, cfg)
	book := keepLogs(d)

	msg := "From: <me@example.com>\r\nTo: <ok@story.test>\r\nSubject: story\r\nMessage-ID: <story-1@example.com>\r\n\r\nHello.\r\n"
	id := strings.TrimSpace(mustCtl(t, cfg, msg, "enqueue", "--from", "me@example.com",
		"--to", "ok@story.test", "--to", "defer-1@story.test", "--to", "bounce-1@story.test"))

	uid := fmt.Sprint(os.Getuid())
	book.waitFor(t, 0, "arrived", map[string]any{"queue_id": id, "source": "control", "sender": "me@example.com",
		"recipients": 3, "message_id": "<story-1@example.com>", "uid": uid}, 10*time.Second)
	book.waitFor(t, 0, "recipient accepted", map[string]any{"queue_id": id, "recipient": "ok@story.test"}, 20*time.Second)
	book.waitFor(t, 0, "delivered", map[string]any{"queue_id": id, "recipient": "ok@story.test"}, 20*time.Second)
	book.waitFor(t, 0, "retry", map[string]any{"queue_id": id, "recipient": "defer-1@story.test", "attempt": 1}, 20*time.Second)
	book.waitFor(t, 0, "bounce", map[string]any{"queue_id": id, "recipient": "bounce-1@story.test"}, 20*time.Second)
	notice := book.waitFor(t, 0, "delivery status notification queued", map[string]any{"queue_id": id}, 20*time.Second)
	dsnID := fmt.Sprint(notice["dsn_id"])
	if dsnID == "" || dsnID == id || dsnID == "<nil>" {
		t.Fatalf("the DSN line names no id of its own: %v", notice)
	}
	book.waitFor(t, 0, "arrived", map[string]any{"queue_id": dsnID, "source": "dsn", "cause": id}, 10*time.Second)

	mustCtl(t, cfg, "", "retry", id)
	book.waitFor(t, 0, "operator: retry", map[string]any{"queue_id": id, "uid": uid}, 10*time.Second)
	book.waitFor(t, 0, "retry", map[string]any{"queue_id": id, "recipient": "defer-1@story.test", "attempt": 2}, 20*time.Second)
	mustCtl(t, cfg, "", "delete", id)
	book.waitFor(t, 0, "operator: delete", map[string]any{"queue_id": id, "uid": uid}, 10*time.Second)

	// The story, as the jq one-liner shows it: every line about the
	// message carries queue_id, and nothing about it uses another key.
	book.mu.Lock()
	defer book.mu.Unlock()
	var story []string
	for _, l := range book.lines {
		if l["queue_id"] == id {
			story = append(story, fmt.Sprint(l["message"], " ", l["recipient"]))
		} else if l["id"] == id {
			t.Errorf("a line names the message under \"id\", not \"queue_id\": %v", l)
		}
	}
	t.Logf("the story of %s: %s", id, strings.Join(story, " → "))
	arrived := strings.HasPrefix(story[0], "arrived")
	if !arrived || !strings.HasPrefix(story[len(story)-1], "operator: delete") {
		t.Errorf("story does not run from arrival to removal: %v", story)
	}
	for _, l := range book.lines {
		if l["queue_id"] == id && l["message"] == "arrived" {
			if l["client"] == "" || l["user"] == "" || l["size"] == nil || fmt.Sprint(l["size"]) == "0" {
				t.Errorf("arrival line lacks client, user or size: %v", l)
			}
		}
	}
}

// TestPurgeIsLogged: removal of a done message at the end of its retention
// is in the log under its queue_id.
func TestPurgeIsLogged(t *testing.T) {
	sink := startOpsSink(t, "purge", true)
	dir := t.TempDir()
	cfg := testConfig(t, dir, "retention = \"1ms\"\n"+sinkRoute(sink.port))
	d, _ := startOpsDaemon(t, cfg)
	book := keepLogs(d)
	id := enqueue(t, cfg, "me@example.com", "ok@purge.test")
	book.waitFor(t, 0, "delivered", map[string]any{"queue_id": id}, 20*time.Second)
	d.stop(t)
	// At start the daemon purges what is past retention.
	d2, _ := startOpsDaemon(t, cfg)
	book2 := keepLogs(d2)
	book2.waitFor(t, 0, "removed: done and past retention", map[string]any{"queue_id": id}, 10*time.Second)
}
