package clientconf

import (
	"strings"
	"unicode/utf8"
)

// quickKeys reads the client's keys from text when all of text is in the
// plain part of TOML that configurations are written in (the example, the
// installed files): UTF-8 without control characters; comments; [table] and [[array]] headers with bare
// names; one key = value per line, the key bare or quoted without escapes, the value a string without escapes,
// a decimal number, a boolean, or a one-line array of those. Anything else (and
// anything TOML forbids that a line-by-line reading could miss, as a key
// or table defined twice) gives ok false, and Read decodes the file with
// the TOML library instead, whose errors then say what is wrong.
//
// sendmail reads the configuration at each start; the library's decoder
// took most of a millisecond of it (issue 13). FuzzQuickKeysAgreeWithTOML
// holds the two readers to the same answer.
//
// onlyClient says text holds nothing but the keys of a client file
// (hostname, [control] socket, [maildrop] dir).
func quickKeys(text string) (k clientKeys, defined map[string]bool, onlyClient, ok bool) {
	if !utf8.ValidString(text) {
		return k, nil, false, false
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == 0x7f || c < 0x20 && c != '\t' && c != '\n' && !(c == '\r' && i+1 < len(text) && text[i+1] == '\n') {
			return k, nil, false, false
		}
	}
	defined = map[string]bool{}
	onlyClient = true
	headers := map[string]bool{} // table name → defined by [[name]]
	rootKeys := map[string]bool{}
	table, keys := "", rootKeys // the current table and its keys so far
	for _, line := range strings.Split(text, "\n") {
		line = strings.Trim(line, " \t\r")
		switch {
		case line == "" || line[0] == '#':
			continue
		case line[0] == '[':
			array := strings.HasPrefix(line, "[[")
			open, close := "[", "]"
			if array {
				open, close = "[[", "]]"
			}
			end := strings.Index(line, close)
			if end < 0 || !trailing(line[end+len(close):]) {
				return k, nil, false, false
			}
			name := line[len(open):end]
			wasArray, seen := headers[name]
			if !bareKey(name) || rootKeys[name] || seen && (!array || !wasArray) {
				return k, nil, false, false
			}
			if array && (name == "control" || name == "maildrop" || name == "queue") {
				return k, nil, false, false // a table in the client's keys; let the library say so
			}
			headers[name] = array
			onlyClient = onlyClient && (name == "control" || name == "maildrop")
			table, keys = name, map[string]bool{}
		default:
			name, rest, found := strings.Cut(line, "=")
			name, valid := keyName(strings.Trim(name, " \t"))
			if !found || !valid || keys[name] {
				return k, nil, false, false
			}
			if table == "" && (headers[name] || name == "control" || name == "maildrop" || name == "queue") {
				return k, nil, false, false
			}
			keys[name] = true
			value, isString, valid := plainValue(strings.Trim(rest, " \t"))
			if !valid {
				return k, nil, false, false
			}
			var target *string
			switch table + "." + name {
			case ".hostname":
				target = &k.Hostname
			case "control.socket":
				target = &k.Control.Socket
			case "maildrop.dir":
				target = &k.Maildrop.Dir
			case "queue.backend":
				target = &k.Queue.Backend
				onlyClient = false
			default:
				onlyClient = false
				continue
			}
			if !isString {
				return k, nil, false, false
			}
			*target = value
			defined[strings.TrimPrefix(table+"."+name, ".")] = true
		}
	}
	return k, defined, onlyClient, true
}

// keyName is the key s names: a bare key, or a quoted one without
// escapes (the same key as the bare one of its content).
func keyName(s string) (string, bool) {
	if n := len(s); n > 2 && (s[0] == '"' || s[0] == '\'') && s[n-1] == s[0] {
		inner := s[1 : n-1]
		return inner, !strings.ContainsAny(inner, "\"'\\")
	}
	return s, bareKey(s)
}

// bareKey reports whether s is a TOML bare key: A-Za-z0-9_- only.
func bareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// trailing reports whether s is what may follow a value on its line:
// blanks, then perhaps a comment.
func trailing(s string) bool {
	s = strings.TrimLeft(s, " \t")
	return s == "" || s[0] == '#'
}

// plainValue reads s, a value and what follows it on the line: a string
// without escapes (its content returned), an integer, true or false, or a
// one-line array of those.
func plainValue(s string) (value string, isString, ok bool) {
	if strings.HasPrefix(s, "[") {
		rest := strings.TrimLeft(s[1:], " \t")
		for !strings.HasPrefix(rest, "]") {
			n := scalarLen(rest)
			if n == 0 {
				return "", false, false
			}
			rest = strings.TrimLeft(rest[n:], " \t")
			if strings.HasPrefix(rest, ",") {
				rest = strings.TrimLeft(rest[1:], " \t")
			} else if !strings.HasPrefix(rest, "]") {
				return "", false, false
			}
		}
		return "", false, trailing(rest[1:])
	}
	n := scalarLen(s)
	if n == 0 || !trailing(s[n:]) {
		return "", false, false
	}
	if s[0] == '"' || s[0] == '\'' {
		return s[1 : n-1], true, true
	}
	return "", false, true
}

// scalarLen is the length of the plain scalar s starts with, 0 if none.
func scalarLen(s string) int {
	if s == "" {
		return 0
	}
	switch q := s[0]; q {
	case '"', '\'':
		if strings.HasPrefix(s, `"""`) || strings.HasPrefix(s, "'''") {
			return 0 // multi-line
		}
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return 0
		}
		if q == '"' && strings.IndexByte(s[1:1+end], '\\') >= 0 {
			return 0
		}
		return end + 2
	}
	n := strings.IndexAny(s, " \t,]#")
	if n < 0 {
		n = len(s)
	}
	word := s[:n]
	if word == "true" || word == "false" || plainNumber(word) {
		return n
	}
	return 0
}

// plainNumber reports whether s is a TOML integer or float in plain
// decimal: an optional sign, then 0 or digits not starting with 0, then
// perhaps a point and digits. No underscores, exponents, inf or nan.
func plainNumber(s string) bool {
	whole, frac, isFloat := strings.Cut(s, ".")
	if !plainInteger(whole) || isFloat && !digits(frac) {
		return false
	}
	return true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainInteger reports whether s is a decimal TOML integer without
// underscores: an optional sign, then 0 or digits not starting with 0.
func plainInteger(s string) bool {
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	return digits(s) && len(s) <= 18 && (s[0] != '0' || len(s) == 1)
}
