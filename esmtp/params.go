package esmtp

import (
	"fmt"
	"strings"
)

// maxEnvID is RFC 3461 §4.4's limit on the xtext-encoded ENVID.
const maxEnvID = 100

// NormalizeRet checks an RFC 3461 §4.3 RET value ("" = unspecified) and
// returns it in upper case, or why it is invalid.
func NormalizeRet(ret string) (string, string) {
	switch u := strings.ToUpper(ret); u {
	case "", "FULL", "HDRS":
		return u, ""
	}
	return "", "must be FULL or HDRS"
}

// NormalizeNotify checks an RFC 3461 §4.1 NOTIFY value ("" = unspecified):
// NEVER alone, or a comma-separated set of SUCCESS, FAILURE, DELAY without
// repeats. It returns the value in upper case, or why it is invalid.
func NormalizeNotify(notify string) (string, string) {
	if notify == "" {
		return "", ""
	}
	u := strings.ToUpper(notify)
	seen := map[string]bool{}
	parts := strings.Split(u, ",")
	for _, p := range parts {
		switch p {
		case "NEVER":
			if len(parts) > 1 {
				return "", "NEVER cannot be combined with other values"
			}
		case "SUCCESS", "FAILURE", "DELAY":
			if seen[p] {
				return "", p + " is repeated"
			}
			seen[p] = true
		default:
			return "", "must be NEVER or a list of SUCCESS, FAILURE, DELAY"
		}
	}
	return u, ""
}

// CheckEnvID checks a decoded RFC 3461 §4.4 ENVID ("" = none): printable
// ASCII, at most 100 characters once xtext-encoded. It returns why it is
// invalid, or "".
func CheckEnvID(envid string) string {
	if envid == "" {
		return ""
	}
	if !PrintableASCII(envid) {
		return "must be printable US-ASCII"
	}
	if n := len(EncodeXtext(envid)); n > maxEnvID {
		return fmt.Sprintf("is %d characters xtext-encoded, at most %d allowed", n, maxEnvID)
	}
	return ""
}
