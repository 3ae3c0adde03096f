package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

var (
	configType   = reflect.TypeOf(Config{})
	retryType    = reflect.TypeOf(Retry{})
	durationType = reflect.TypeOf(Duration{})
)

// fieldsByTag maps each TOML key of a struct type to its field type,
// flattening embedded structs the way the TOML decoder does.
func fieldsByTag(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range fieldsByTag(f.Type) {
				out[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// checkTable reports every unknown key and every value of the wrong type in
// one TOML table decoded generically, naming where it is (a section, or a
// route by its name) and the key.
func checkTable(where string, table map[string]any, t reflect.Type) []error {
	fields := fieldsByTag(t)
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		f, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Errorf("config: %s is unknown%s", describe(where, k), dottedHint(k, table[k], fields)))
			continue
		}
		if t == configType {
			errs = append(errs, checkTopLevel(k, table[k], f.Type)...)
			continue
		}
		if f.Type.Kind() == reflect.Map && t != configType {
			// A route's [route.retry]: the keys of the global [retry].
			sub, ok := table[k].(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("config: %s: want a table [route.%s], got %s", describe(where, k), k, typeName(table[k])))
				continue
			}
			errs = append(errs, checkTable(where+" [route."+k+"]", sub, retryType)...)
			continue
		}
		if err := checkValue(table[k], f.Type); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", describe(where, k), err))
		}
	}
	return errs
}

// checkTopLevel checks one key of the file's root: a plain value, a
// section such as [retry], or one of the arrays [[submission]]/[[route]].
func checkTopLevel(key string, v any, t reflect.Type) []error {
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		sub, ok := v.(map[string]any)
		if !ok {
			return []error{fmt.Errorf("config: key %q: want a table [%s], got %s", key, key, typeName(v))}
		}
		return checkTable("["+key+"]", sub, t)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if a, ok := v.([]any); ok && len(a) == 0 {
			return nil // "submission = []": none at all
		}
		elems := tables(v)
		if elems == nil || len(elems) != arrayLen(v) {
			return []error{fmt.Errorf("config: key %q: want an array of tables [[%s]], got %s", key, key, typeName(v))}
		}
		var errs []error
		for i, e := range elems {
			errs = append(errs, checkTable(elementName(key, i, e), e, t.Elem())...)
		}
		return errs
	}
	if err := checkValue(v, t); err != nil {
		return []error{fmt.Errorf("config: key %q: %w", key, err)}
	}
	return nil
}

// elementName names one [[route]] by its name, one [[submission]] by its
// listen address, falling back to the position in the file.
func elementName(key string, i int, table map[string]any) string {
	switch key {
	case "route":
		if name, ok := table["name"].(string); ok && name != "" {
			return fmt.Sprintf("route %q", name)
		}
	case "submission":
		if listen, ok := table["listen"].(string); ok && listen != "" {
			return fmt.Sprintf("submission %q", listen)
		}
	}
	return fmt.Sprintf("%s #%d", key, i+1)
}

func arrayLen(v any) int {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return -1
	}
	return rv.Len()
}

// checkValue checks that a generic TOML value can go into a field of type t.
func checkValue(v any, t reflect.Type) error {
	if t == durationType {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a duration string such as \"30s\" or \"5m\", got %s", typeName(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as \"30s\" or \"5m\", got %q", s)
		}
		if d < 0 {
			return fmt.Errorf("want a positive duration, got %q", s)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkValue(v, t.Elem())
	case reflect.String:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string, got %s", typeName(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want true or false, got %s", typeName(v))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if _, ok := v.(int64); !ok {
			return fmt.Errorf("want an integer, got %s", typeName(v))
		}
	case reflect.Float64, reflect.Float32:
		switch v.(type) {
		case int64, float64:
		default:
			return fmt.Errorf("want a number, got %s", typeName(v))
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("want an array, got %s", typeName(v))
		}
		for i, e := range a {
			if err := checkValue(e, t.Elem()); err != nil {
				return fmt.Errorf("element %d: %w", i+1, err)
			}
		}
	default:
		return fmt.Errorf("unsupported field type %s (a bug in mailq)", t)
	}
	return nil
}

// dottedHint explains the most likely cause of an unknown key that is a
// table: an unquoted dotted key such as starttls.required = true, which
// TOML reads as a table "starttls" with a key "required".
func dottedHint(key string, v any, fields map[string]reflect.StructField) string {
	sub, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	for k := range sub {
		if _, known := fields[key+"."+k]; known {
			return fmt.Sprintf(" (keys with dots must be quoted: \"%s.%s\" = …)", key, k)
		}
	}
	return ""
}

func typeName(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", v)
}

// Warnings lists settings that work but that an operator should know
// about, each naming the route and key: printed by --check-config and
// logged at start.
func (c *Config) Warnings() []string {
	var out []string
	for _, r := range c.Routes {
		where := fmt.Sprintf("route %q", r.Name)
		if r.Password != "" {
			out = append(out, where+`: key "password" holds the password in the configuration file; prefer "password_file" (mode 0600) or "password_env"`)
		}
		if strings.TrimSpace(r.SSLTrust) == "*" && r.SSLCheckServerIdentity != nil && !*r.SSLCheckServerIdentity {
			out = append(out, where+`: "ssl.trust" = "*" with "ssl.checkserveridentity" = false accepts any certificate for any name: TLS then stops only passive eavesdropping, not an impostor`)
		}
		if r.Allow8BitMIME {
			out = append(out, where+`: key "allow8bitmime" = true has no effect: mailq never rewrites a message body; an 8-bit body goes with BODY=8BITMIME when the server offers it, and unchanged otherwise`)
		}
	}
	if c.Queue.DSN != "" && strings.Contains(strings.ToLower(c.Queue.DSN), "password") {
		out = append(out, `[queue]: key "dsn" holds the database password in the configuration file; prefer "dsn_file" (mode 0600) or "dsn_env"`)
	}
	return out
}
