// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security (RFC 8461): the _mta-sts TXT record, the policy fetched over
// HTTPS, and a cache that keeps each policy for its max_age.
package mtasts

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

const (
	Enforce Mode = "enforce" // deliver only to matching MX hosts over verified TLS
	Testing Mode = "testing" // report failures, deliver anyway
	None    Mode = "none"    // the domain withdrew its policy
)

// maxMaxAge is the largest max_age honoured (RFC 8461 §3.2: 31557600 s).
const maxMaxAge = 31557600 * time.Second

// Policy is one parsed policy.
type Policy struct {
	ID     string    `json:"id"` // the TXT record's id when it was fetched
	Mode   Mode      `json:"mode"`
	MX     []string  `json:"mx"`
	MaxAge int64     `json:"max_age"` // seconds
	Expiry time.Time `json:"expiry"`  // fetch time + max_age
}

// Parse reads a policy body (RFC 8461 §3.2): "key: value" lines, CRLF or
// LF, version STSv1 first, mode, max_age, and mx for enforce and testing.
func Parse(body string) (Policy, error) {
	var p Policy
	version := ""
	haveAge := false
	sc := bufio.NewScanner(strings.NewReader(body))
	first := true
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return Policy{}, fmt.Errorf("mta-sts: policy line %q has no \"key: value\"", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if first && k != "version" {
			return Policy{}, fmt.Errorf("mta-sts: policy must start with version: STSv1")
		}
		first = false
		switch k {
		case "version":
			version = v
		case "mode":
			p.Mode = Mode(v)
		case "max_age":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || len(v) > 10 {
				return Policy{}, fmt.Errorf("mta-sts: max_age %q is not a number of seconds", v)
			}
			p.MaxAge = min(n, int64(maxMaxAge/time.Second))
			haveAge = true
		case "mx":
			p.MX = append(p.MX, strings.ToLower(v))
		default:
			// RFC 8461 §3.2: unknown fields are ignored.
		}
	}
	switch {
	case version != "STSv1":
		return Policy{}, fmt.Errorf("mta-sts: version %q, want STSv1", version)
	case p.Mode != Enforce && p.Mode != Testing && p.Mode != None:
		return Policy{}, fmt.Errorf("mta-sts: mode %q, want enforce, testing or none", p.Mode)
	case !haveAge:
		return Policy{}, fmt.Errorf("mta-sts: policy has no max_age")
	case p.Mode != None && len(p.MX) == 0:
		return Policy{}, fmt.Errorf("mta-sts: a %s policy needs at least one mx", p.Mode)
	}
	return p, nil
}

// ParseTXT reads the _mta-sts TXT records (RFC 8461 §3.1) and returns the
// policy id. Exactly one record must start with "v=STSv1"; else there is
// no (usable) policy announcement and ok is false.
func ParseTXT(records []string) (id string, ok bool) {
	n := 0
	for _, r := range records {
		if !strings.HasPrefix(r, "v=STSv1") {
			continue
		}
		n++
		for _, field := range strings.Split(r, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
			if strings.TrimSpace(k) == "id" {
				id = strings.TrimSpace(v)
			}
		}
	}
	if n != 1 || id == "" {
		return "", false
	}
	return id, true
}

// Matches reports whether host is allowed by the policy's mx patterns
// (RFC 8461 §4.1: "*." stands for exactly one leftmost label).
func (p Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		pat = strings.TrimSuffix(pat, ".")
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if label, parent, ok := strings.Cut(host, "."); ok && label != "" && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}
