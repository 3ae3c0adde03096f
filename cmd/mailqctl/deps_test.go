package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksOnlyClientPackages pins what mailqctl links, because it is also
// sendmail, started once per message: every package linked costs its init
// and its share of the binary at each start (issue 13: with prometheus,
// zerolog and the daemon's packages linked, start-up was most of a
// sendmail call). The daemon's side of each package lives in its own
// package so the client side stays small.
func TestLinksOnlyClientPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []struct{ prefix, why string }{
		{"github.com/prometheus/", "metrics are the daemon's (package metrics)"},
		{"google.golang.org/protobuf", "prometheus's encoding"},
		{"github.com/rs/zerolog", "logging is the daemon's"},
		{"github.com/fsnotify/", "the maildrop watcher is the daemon's (intake/maildrop)"},
		{"github.com/cenkalti/backoff", "webhook retries are the daemon's (events/webhook)"},
		{"go.etcd.io/bbolt", "the store is the daemon's (mailq read-queue reads it for mailqctl)"},
		{"mailq/metrics", "prometheus"},
		{"mailq/config", "the daemon's whole configuration: mailqctl reads its keys with mailq/config/clientconf"},
		{"mailq/smtpproto", "the SMTP client is the daemon's"},
		{"mailq/control/server", "the control API's server side"},
		{"mailq/intake/maildrop", "the maildrop watcher"},
		{"mailq/intake/arrival", "the arrival log line"},
		{"mailq/events/webhook", "the webhook poster"},
		{"mailq/queue/", "store implementations"},
		{"net/http", "the control client speaks its HTTP/1.1 itself (control/wire.go): net/http's init, and crypto/tls's and crypto/x509's it brings, ran at each sendmail start"},
		{"crypto/tls", "TLS is the daemon's (SMTP)"},
		{"crypto/x509", "certificates are the daemon's"},
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f.prefix || strings.HasPrefix(dep, f.prefix) && (strings.HasSuffix(f.prefix, "/") || strings.HasPrefix(dep[len(f.prefix):], "/")) {
				if dep == "mailq/config/clientconf" {
					continue
				}
				t.Errorf("mailqctl links %s (%s)", dep, f.why)
			}
		}
	}
}
