package config

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// acceptedKeys is every key a configuration file may set, as
// "section.key" ("key" at the top level), from the types Load decodes into.
func acceptedKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for k, f := range fieldsByTag(t) {
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(prefix+k+".", ft)
				continue
			}
			keys = append(keys, prefix+k)
		}
	}
	walk("", configType)
	sort.Strings(keys)
	return keys
}

// TestEveryKeyIsDocumented keeps the reference true: every key the loader
// accepts appears in docs/configuration.md (as `key`) and in the man page
// mailq.toml(5) (as a .B line of its section's list).
func TestEveryKeyIsDocumented(t *testing.T) {
	md, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	roff, err := os.ReadFile("../man/mailq.toml.5")
	if err != nil {
		t.Fatal(err)
	}
	man := strings.NewReplacer(`\-`, "-", `\e`, `\`).Replace(string(roff))
	keys := acceptedKeys()
	if len(keys) < 90 {
		t.Fatalf("only %d keys found; the walk over the config types is broken", len(keys))
	}
	for _, full := range keys {
		key := full
		switch {
		case strings.HasPrefix(full, "route."):
			key = strings.TrimPrefix(full, "route.")
		case strings.Contains(full, "."):
			_, key, _ = strings.Cut(full, ".")
		}
		if !strings.Contains(string(md), "| `"+key+"` |") {
			t.Errorf("%s is accepted but not in docs/configuration.md's tables", full)
		}
		if !strings.Contains(man, "\n.B "+key+"\n") {
			t.Errorf("%s is accepted but not in man/mailq.toml.5", full)
		}
	}
}
