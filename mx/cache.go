package mx

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bounds on how long an answer is kept, whatever its TTL says: a zero TTL
// is still worth a second (a burst of messages to one domain asks once),
// and a week-long TTL must not pin a record that the owner changed.
const (
	minCacheTTL      = time.Second
	maxCacheTTL      = time.Hour
	negativeCacheTTL = 5 * time.Minute // when the SOA gives no minimum (RFC 2308 §5)
	// DefaultCacheSize is how many answers the cache keeps (LRU beyond).
	DefaultCacheSize = 10000
)

// answer is one cached reply: its rcode and answer section.
type answer struct {
	rcode   int
	records []dns.RR
}

type cacheEntry struct {
	key     string
	answer  answer
	expires time.Time
}

// cache is a size-bounded LRU of DNS answers, each kept for its TTL.
type cache struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	order *list.List // front = most recently used
	byKey map[string]*list.Element
}

func newCache(size int, now func() time.Time) *cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &cache{max: size, now: now, order: list.New(), byKey: make(map[string]*list.Element)}
}

func (c *cache) get(key string) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return answer{}, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.byKey, key)
		return answer{}, false
	}
	c.order.MoveToFront(el)
	return e.answer, true
}

func (c *cache) put(key string, a answer, ttl time.Duration) {
	ttl = min(max(ttl, minCacheTTL), maxCacheTTL)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*cacheEntry)
		e.answer, e.expires = a, c.now().Add(ttl)
		c.order.MoveToFront(el)
		return
	}
	c.byKey[key] = c.order.PushFront(&cacheEntry{key: key, answer: a, expires: c.now().Add(ttl)})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// ttlOf is how long a reply may be cached: the smallest TTL of its answer
// records, or for a negative reply the SOA minimum of its authority
// section (RFC 2308 §5), or negativeCacheTTL.
func ttlOf(m *dns.Msg) time.Duration {
	if len(m.Answer) > 0 {
		ttl := m.Answer[0].Header().Ttl
		for _, rr := range m.Answer[1:] {
			ttl = min(ttl, rr.Header().Ttl)
		}
		return time.Duration(ttl) * time.Second
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Minttl, soa.Hdr.Ttl)) * time.Second
		}
	}
	return negativeCacheTTL
}
