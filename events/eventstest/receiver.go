// Package eventstest is a webhook receiver for tests: a plain HTTP or an
// HTTPS server (with a CA made for the test) that verifies each request's
// signature, records the events and can play dead.
package eventstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"mailq/events"
)

// Receiver is a running webhook endpoint.
type Receiver struct {
	URL    string
	CAFile string // PEM of the CA that signed an HTTPS receiver's certificate ("" for HTTP)
	CA     *x509.CertPool
	Secret []byte

	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	delay    time.Duration  // before answering each request
	posts    int            // requests answered 2xx
	refused  int            // requests answered 503 while down
	got      []events.Event // every acknowledged event, in arrival order (duplicates too)
	problems []string       // bad signatures, bad bodies
	changed  chan struct{}
}

// NewHTTP starts a plain HTTP receiver on a loopback port.
func NewHTTP(t testing.TB, secret []byte) *Receiver {
	r := &Receiver{Secret: secret, changed: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(r)
	r.URL = r.srv.URL + "/hooks/mail"
	t.Cleanup(r.srv.Close)
	return r
}

// NewHTTPS starts an HTTPS receiver whose certificate, for 127.0.0.1, is
// signed by a CA made here; CAFile holds that CA for the client's ca_file.
func NewHTTPS(t testing.TB, secret []byte) *Receiver {
	r := &Receiver{Secret: secret, changed: make(chan struct{}, 1)}
	caPEM, cert, pool, err := makeCA()
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	r.CA = pool
	r.CAFile = filepath.Join(t.TempDir(), "webhook-ca.pem")
	if err := os.WriteFile(r.CAFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewUnstartedServer(r)
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	r.srv.StartTLS()
	r.URL = r.srv.URL + "/hooks/mail"
	t.Cleanup(r.srv.Close)
	return r
}

// SetDelay makes the receiver wait d before answering each request.
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// SetDown makes the receiver answer 503 (true) or accept again (false).
func (r *Receiver) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	delay := r.delay
	r.mu.Unlock()
	time.Sleep(delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}()
	if r.down {
		r.refused++
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	}
	if err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.problems = append(r.problems, fmt.Sprintf("bad request: %s %s %v", req.Method, req.Header.Get("Content-Type"), err))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if len(r.Secret) > 0 {
		if err := events.Verify(r.Secret, req.Header.Get(events.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			r.problems = append(r.problems, "signature: "+err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID == 0 {
		r.problems = append(r.problems, fmt.Sprintf("body %q: %v", body, err))
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if h := req.Header.Get(events.EventIDHeader); h != fmt.Sprint(e.ID) {
		r.problems = append(r.problems, fmt.Sprintf("event %d came with %s %q", e.ID, events.EventIDHeader, h))
	}
	r.posts++
	r.got = append(r.got, e)
	w.WriteHeader(http.StatusNoContent)
}

// Received returns every acknowledged event in arrival order, duplicates included.
func (r *Receiver) Received() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.got...)
}

// Count is how many events were acknowledged, duplicates included.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// Distinct returns the acknowledged events once each, by id, and how many
// repeats there were.
func (r *Receiver) Distinct() (byID map[uint64]events.Event, duplicates int) {
	byID = map[uint64]events.Event{}
	for _, e := range r.Received() {
		if _, ok := byID[e.ID]; ok {
			duplicates++
			continue
		}
		byID[e.ID] = e
	}
	return byID, duplicates
}

// Problems lists requests the receiver had to refuse (bad signature or body).
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// Refused is how many requests were answered 503 while down.
func (r *Receiver) Refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// OrderProblems checks that each message's events arrived in id order
// (first arrival of each id counts; a repeat of an older one is allowed,
// as at-least-once delivery may repeat).
func (r *Receiver) OrderProblems() []string {
	last := map[string]uint64{}
	seen := map[uint64]bool{}
	var out []string
	for _, e := range r.Received() {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		if e.ID < last[e.QueueID] {
			out = append(out, fmt.Sprintf("message %s: event %d (%s) arrived after event %d", e.QueueID, e.ID, e.Type, last[e.QueueID]))
		}
		last[e.QueueID] = max(last[e.QueueID], e.ID)
	}
	return out
}

// WaitFor waits until cond holds over the distinct events, or fails t.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(map[uint64]events.Event) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		byID, _ := r.Distinct()
		if cond(byID) {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("webhook receiver: %s: not within %v; have %d events: %s", what, timeout, len(byID), Summary(byID))
		}
	}
}

// Summary lists events as "id type queue_id recipient", sorted by id.
func Summary(byID map[uint64]events.Event) string {
	ids := make([]uint64, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	s := ""
	for _, id := range ids {
		e := byID[id]
		s += fmt.Sprintf("\n  %d %s %s %s", id, e.Type, e.QueueID, e.Recipient)
	}
	return s
}

// makeCA makes a CA and a server certificate for 127.0.0.1 signed by it.
func makeCA() (caPEM []byte, leaf tls.Certificate, pool *x509.CertPool, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, leaf, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailq webhook test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, leaf, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, leaf, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, leaf, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, leaf, nil, err
	}
	leaf = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), leaf, pool, nil
}
