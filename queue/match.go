package queue

import "strings"

// MatchAddress reports whether addr matches pattern: an address (compared
// case-insensitively), or a domain, written "@example.com" or
// "example.com", which matches the addresses at exactly that domain.
func MatchAddress(pattern, addr string) bool {
	if pattern == "" {
		return false
	}
	if strings.HasPrefix(pattern, "@") || !strings.Contains(pattern, "@") {
		domain := strings.TrimPrefix(pattern, "@")
		at := strings.LastIndexByte(addr, '@')
		return at >= 0 && strings.EqualFold(addr[at+1:], domain)
	}
	return strings.EqualFold(pattern, addr)
}
