// Package webhook posts stored events to each [[webhook]]: a durable cursor
// per endpoint, signed POSTs, retries, and order kept per message
// (docs/events.md).
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"mailq/events"
	"mailq/metrics"
	"mailq/queue"
)

// window bounds the events a webhook has read but not yet finished; a
// dead endpoint therefore holds this much memory at most.
const window = 4096

// Endpoint is one [[webhook]] as the poster uses it.
type Endpoint struct {
	Name    string               // cursor name and metrics label; default the URL
	URL     string               // http:// or https://
	Events  map[events.Type]bool // nil or empty: every type
	Secret  []byte               // HMAC key; nil sends no signature
	Timeout time.Duration        // per POST
	MaxAge  time.Duration        // an event older than this is given up
	Workers int                  // parallel POSTs; events of one message stay in order
	TLS     *tls.Config          // e.g. RootCAs from ca_file; nil = system roots
	Client  *http.Client         // tests may set one; default built from TLS
	Backoff func() backoff.BackOff
}

// Options configures a Poster.
type Options struct {
	Store    queue.Store
	Webhooks []Endpoint
	Logger   zerolog.Logger
	Now      func() time.Time // event age for max_age; default time.Now
	// RetryInitial and RetryMax shape the backoff between tries of one
	// event (default 1s doubling up to 5m); tests shorten them.
	RetryInitial, RetryMax time.Duration
}

// Poster posts stored events to every webhook: each webhook keeps a
// durable cursor in the store, reads the log after it, and posts with its
// own workers; the cursor advances over an event only once it was
// acknowledged (2xx) or given up, so delivery is at least once.
type Poster struct {
	opts  Options
	hooks []*hook
}

// NewPoster checks the webhooks and builds their HTTP clients.
func NewPoster(opts Options) (*Poster, error) {
	if opts.Store == nil {
		return nil, errors.New("webhook: Options.Store is nil")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	p := &Poster{opts: opts}
	seen := map[string]bool{}
	for _, w := range opts.Webhooks {
		if w.Name == "" {
			w.Name = redact(w.URL)
		}
		if seen[w.Name] {
			return nil, fmt.Errorf("events: two webhooks are named %q; give each a distinct name", w.Name)
		}
		seen[w.Name] = true
		if w.Timeout <= 0 {
			w.Timeout = events.DefaultTimeout
		}
		if w.MaxAge <= 0 {
			w.MaxAge = events.DefaultMaxAge
		}
		if w.Workers <= 0 {
			w.Workers = events.DefaultWorkers
		}
		if w.Client == nil {
			w.Client = &http.Client{Transport: &http.Transport{
				TLSClientConfig:     w.TLS,
				MaxIdleConnsPerHost: w.Workers,
				IdleConnTimeout:     90 * time.Second,
				ForceAttemptHTTP2:   true,
			}}
		}
		h := &hook{p: p, w: w, log: opts.Logger.With().Str("webhook", w.Name).Logger(), notify: make(chan struct{}, 1)}
		p.hooks = append(p.hooks, h)
	}
	return p, nil
}

// Run posts until ctx ends. Events not acknowledged by then are posted
// again after the next start.
func (p *Poster) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.hooks))
	for i, h := range p.hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// MinCursor is the lowest position of any webhook (every event after it is
// still needed); ok is false without webhooks.
func (p *Poster) MinCursor() (seq uint64, ok bool) {
	for _, h := range p.hooks {
		h.mu.Lock()
		c, started := h.acked, h.started
		h.mu.Unlock()
		if !started {
			return 0, true
		}
		if !ok || c < seq {
			seq, ok = c, true
		}
	}
	return seq, ok
}

// Status reports every webhook.
func (p *Poster) Status() []events.WebhookStatus {
	last, _ := p.opts.Store.LastEventSeq()
	out := make([]events.WebhookStatus, 0, len(p.hooks))
	for _, h := range p.hooks {
		h.mu.Lock()
		st := h.st
		st.Cursor, st.Running = h.acked, h.started
		st.InFlight = len(h.order)
		h.mu.Unlock()
		st.Name, st.URL = h.w.Name, redact(h.w.URL)
		for _, t := range events.AllTypes {
			if h.w.Events[t] {
				st.Events = append(st.Events, t)
			}
		}
		if last > st.Cursor {
			st.Pending = last - st.Cursor
		}
		out = append(out, st)
	}
	return out
}

// hook is one webhook's reader and workers.
type hook struct {
	p   *Poster
	w   Endpoint
	log zerolog.Logger

	notify chan struct{} // a worker finished an event (cap 1)

	mu      sync.Mutex
	started bool
	acked   uint64               // cursor: every event up to it is done
	order   []uint64             // read and not yet passed by the cursor, ascending
	done    map[uint64]bool      // finished events in order
	st      events.WebhookStatus // counters
}

type job struct {
	ev   queue.StoredEvent
	body []byte
}

func (h *hook) run(ctx context.Context) error {
	store := h.p.opts.Store
	cursor, ok, err := store.EventCursor(h.cursorName())
	if err != nil {
		return err
	}
	if !ok {
		// A new webhook starts at the end of the log: it hears of what
		// happens from now on, not of the history before it was configured.
		if cursor, err = store.LastEventSeq(); err != nil {
			return err
		}
		if err := store.SetEventCursor(h.cursorName(), cursor); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.acked, h.started, h.done = cursor, true, map[uint64]bool{}
	h.mu.Unlock()
	saved := cursor
	read := cursor

	queues := make([]chan job, h.w.Workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan job, window)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.worker(ctx, queues[i])
		}()
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
		h.saveCursor(&saved)
	}()

	flush := time.NewTicker(200 * time.Millisecond)
	defer flush.Stop()
	for {
		changed := store.EventsChanged()
		h.mu.Lock()
		room := window - len(h.order)
		h.mu.Unlock()
		if room > 0 {
			evs, err := store.Events(read, min(room, 512))
			if err != nil {
				if errors.Is(err, queue.ErrClosed) {
					return nil
				}
				return err
			}
			for _, ev := range evs {
				read = ev.Seq
				e, err := events.Decode(ev)
				h.mu.Lock()
				h.order = append(h.order, ev.Seq)
				h.mu.Unlock()
				if err != nil || !h.wants(e.Type) {
					if err != nil {
						h.log.Error().Err(err).Uint64("event", ev.Seq).Msg("skipping an undecodable event")
					}
					h.finish(ev.Seq)
					continue
				}
				select {
				case queues[partition(e.QueueID, len(queues))] <- job{ev: ev, body: events.Encode(ev)}:
				case <-ctx.Done():
					return nil
				}
			}
			if len(evs) > 0 {
				h.advance()
				h.setPending()
				continue // more may be waiting
			}
		}
		h.advance()
		h.setPending()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-h.notify:
		case <-flush.C:
			h.saveCursor(&saved)
		}
	}
}

func (h *hook) cursorName() string { return "webhook:" + h.w.Name }

func (h *hook) wants(t events.Type) bool { return len(h.w.Events) == 0 || h.w.Events[t] }

// partition keeps every event of one message on one worker, so they are
// posted in the order they happened.
func partition(queueID string, n int) int {
	f := fnv.New32a()
	f.Write([]byte(queueID))
	return int(f.Sum32() % uint32(n))
}

// finish marks an event done and wakes the reader.
func (h *hook) finish(seq uint64) {
	h.mu.Lock()
	h.done[seq] = true
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// advance moves the cursor over the done prefix of order.
func (h *hook) advance() {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(h.order) && h.done[h.order[i]] {
		delete(h.done, h.order[i])
		h.acked = h.order[i]
		i++
	}
	h.order = h.order[i:]
}

func (h *hook) setPending() {
	last, err := h.p.opts.Store.LastEventSeq()
	if err != nil {
		return
	}
	h.mu.Lock()
	acked := h.acked
	h.mu.Unlock()
	metrics.WebhookPending.WithLabelValues(h.w.Name).Set(float64(last - min(acked, last)))
}

// saveCursor stores the cursor when it moved since *saved. Between saves a
// crash only repeats events, it never skips one.
func (h *hook) saveCursor(saved *uint64) {
	h.advance()
	h.mu.Lock()
	acked := h.acked
	h.mu.Unlock()
	if acked == *saved {
		return
	}
	if err := h.p.opts.Store.SetEventCursor(h.cursorName(), acked); err != nil {
		if !errors.Is(err, queue.ErrClosed) {
			h.log.Error().Err(err).Msg("cannot store the webhook cursor; events may be posted again after a restart")
		}
		return
	}
	*saved = acked
}

// worker posts the jobs of its partition one after the other.
func (h *hook) worker(ctx context.Context, jobs <-chan job) {
	for j := range jobs {
		if ctx.Err() != nil {
			continue // shutting down: left for the next start
		}
		if h.deliver(ctx, j) {
			h.finish(j.ev.Seq)
		}
	}
}

// deliver posts one event until it is acknowledged or older than max_age
// (true), or ctx ends (false: it stays after the cursor).
func (h *hook) deliver(ctx context.Context, j job) bool {
	bo := h.newBackoff()
	for {
		if age := h.p.opts.Now().Sub(j.ev.Time); age > h.w.MaxAge {
			metrics.WebhookPosts.WithLabelValues(h.w.Name, "expired").Inc()
			h.mu.Lock()
			h.st.Expired++
			h.mu.Unlock()
			h.log.Error().Uint64("event", j.ev.Seq).Str("age", age.Round(time.Second).String()).
				Msg("webhook event given up: not acknowledged within max_age")
			return true
		}
		err := h.post(ctx, j)
		if err == nil {
			metrics.WebhookPosts.WithLabelValues(h.w.Name, "ok").Inc()
			h.mu.Lock()
			h.st.Posted++
			h.st.LastOK = time.Now()
			h.mu.Unlock()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		metrics.WebhookPosts.WithLabelValues(h.w.Name, "error").Inc()
		wait := bo.NextBackOff()
		h.mu.Lock()
		h.st.Failures++
		h.st.LastError, h.st.LastErrorAt = err.Error(), time.Now()
		h.mu.Unlock()
		h.log.Warn().Err(err).Uint64("event", j.ev.Seq).Str("retry_in", wait.String()).Msg("webhook post failed; retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (h *hook) newBackoff() backoff.BackOff {
	if h.w.Backoff != nil {
		return h.w.Backoff()
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = h.p.opts.RetryInitial
	b.MaxInterval = h.p.opts.RetryMax
	b.MaxElapsedTime = 0 // max_age decides when to give up
	b.Reset()
	return b
}

// post sends one event; only a 2xx answer acknowledges it.
func (h *hook) post(ctx context.Context, j job) error {
	ctx, cancel := context.WithTimeout(ctx, h.w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.w.URL, bytes.NewReader(j.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailq-webhook/1")
	req.Header.Set(events.EventIDHeader, strconv.FormatUint(j.ev.Seq, 10))
	if len(h.w.Secret) > 0 {
		req.Header.Set(events.SignatureHeader, events.Sign(h.w.Secret, time.Now(), j.body))
	}
	resp, err := h.w.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redact(h.w.URL) // user:password@ never reaches the log
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s", redact(h.w.URL), resp.Status)
	}
	return nil
}

// redact hides the password of a URL's user information.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
