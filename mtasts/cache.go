package mtasts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Cache keeps each domain's policy until its expiry, in memory and, when
// a file is given, on disk (so a restart does not forget an enforce
// policy: RFC 8461 §5.1 counts on senders remembering it).
type Cache struct {
	mu       sync.Mutex
	file     string
	policies map[string]Policy
	locks    map[string]*sync.Mutex
}

// OpenCache loads file ("" = memory only). A missing or unreadable file
// starts empty: the cache is an optimisation of the fetch.
func OpenCache(file string) *Cache {
	c := &Cache{file: file, policies: map[string]Policy{}, locks: map[string]*sync.Mutex{}}
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			_ = json.Unmarshal(b, &c.policies)
		}
	}
	return c
}

// Get returns domain's policy if it has not expired at now.
func (c *Cache) Get(domain string, now time.Time) (Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.policies[strings.ToLower(domain)]
	if !ok || !now.Before(p.Expiry) {
		return Policy{}, false
	}
	return p, true
}

// Put stores domain's policy and writes the file (0600, atomically).
func (c *Cache) Put(domain string, p Policy) error {
	c.mu.Lock()
	c.policies[strings.ToLower(domain)] = p
	if c.file == "" {
		c.mu.Unlock()
		return nil
	}
	now := time.Now()
	for d, q := range c.policies {
		if now.After(q.Expiry) {
			delete(c.policies, d)
		}
	}
	b, err := json.Marshal(c.policies)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.file), ".mta-sts-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.file)
}

// Lock serialises the refresh of one domain, so a burst of messages
// fetches its policy once.
func (c *Cache) Lock(domain string) func() {
	c.mu.Lock()
	l, ok := c.locks[domain]
	if !ok {
		if len(c.locks) >= 4096 {
			// Forget the locks of past refreshes: at worst two refreshes
			// of one domain overlap once and fetch its policy twice.
			c.locks = map[string]*sync.Mutex{}
		}
		l = &sync.Mutex{}
		c.locks[domain] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}
