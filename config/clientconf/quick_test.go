package clientconf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// viaLibrary is what the TOML library reads of text: the client's keys and
// which of them are defined, or its error.
func viaLibrary(text string) (clientKeys, map[string]bool, error) {
	var k clientKeys
	md, err := toml.Decode(text, &k)
	defined := map[string]bool{}
	for _, key := range [][]string{{"hostname"}, {"control", "socket"}, {"maildrop", "dir"}, {"queue", "backend"}} {
		if err == nil && md.IsDefined(key...) {
			defined[strings.Join(key, ".")] = true
		}
	}
	return k, defined, err
}

// agree fails t when quickKeys reads text (ok) and its answer differs from
// the library's, or the library refuses what quickKeys accepted.
func agree(t *testing.T, text string) (quick bool) {
	t.Helper()
	k, defined, onlyClient, ok := quickKeys(text)
	if !ok {
		return false
	}
	if onlyClient {
		var f clientFile
		md, err := toml.Decode(text, &f)
		if err != nil || len(md.Undecoded()) > 0 || f != k.clientFile {
			t.Fatalf("quickKeys(%q) says it holds only a client file's keys; the library reads %+v, %v, undecoded %v", text, f, err, md.Undecoded())
		}
	}
	want, wantDefined, err := viaLibrary(text)
	if err != nil {
		t.Fatalf("quickKeys read %q, which the TOML library refuses: %v", text, err)
	}
	if k != want {
		t.Fatalf("quickKeys(%q) = %+v, the library reads %+v", text, k, want)
	}
	for _, key := range []string{"hostname", "control.socket", "maildrop.dir", "queue.backend"} {
		if defined[key] != wantDefined[key] {
			t.Fatalf("quickKeys(%q): %s defined = %v, the library says %v", text, key, defined[key], wantDefined[key])
		}
	}
	return true
}

// TestQuickKeysReadsTheInstalledFiles: the configuration and client file
// `make install` puts in /etc/mailq are read without the TOML library's
// decoder, with its answer. (config.example.toml, with its [route.retry]
// sub-tables, is left to the library.)
func TestQuickKeysReadsTheInstalledFiles(t *testing.T) {
	for _, path := range []string{"../../systemd/mailq.toml", "../../systemd/client.toml"} {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !agree(t, string(text)) {
			t.Errorf("%s is not read by quickKeys: sendmail pays for the TOML decoder at each start", path)
		}
	}
}

// TestQuickKeysLeavesTheRestToTheLibrary: what is outside the plain
// subset, or invalid, goes to the library (whose error then names it).
func TestQuickKeysLeavesTheRestToTheLibrary(t *testing.T) {
	for _, text := range []string{
		"hostname = \"a\"\nhostname = \"b\"\n",    // a key twice
		"[control]\nsocket = \"/a\"\n[control]\n", // a table twice
		"hostname = \"a\\tb\"\n",                  // an escape
		"hostname = \"\"\"a\"\"\"\n",              // multi-line
		"hostname = 5\n",                          // not a string
		"[[control]]\nsocket = \"/a\"\n",          // an array where a table is read
		"control = 1\n",                           // a value where a table is read
		"control.socket = \"/a\"\n",               // a dotted key
		"x = 1e5\n",                               // an exponent
		"x = [\n 1,\n]\n",                         // a multi-line array
		"x = {a = 1}\n",                           // an inline table
		"hostname = \"\xff\"\n",                   // not UTF-8
		"[route.tls]\nx = 1\n",                    // a dotted table name
		"x = 1 y\n",                               // garbage after a value
		"x = 01\n",                                // a leading zero
		"[a]\n[[a]]\n",                            // a table, then an array of it
	} {
		if _, _, _, ok := quickKeys(text); ok {
			t.Errorf("quickKeys read %q; it must leave it to the library", text)
		}
	}
}

// FuzzQuickKeysAgreeWithTOML: whatever quickKeys reads, the TOML library
// reads too, to the same keys.
func FuzzQuickKeysAgreeWithTOML(f *testing.F) {
	for _, path := range []string{"../../config.example.toml", "../../systemd/mailq.toml", "../../systemd/client.toml"} {
		if text, err := os.ReadFile(path); err == nil {
			f.Add(string(text))
		}
	}
	f.Add("hostname = 'h' # c\n[queue]\nbackend = \"postgres\"\n[[route]]\nx = [1, 'a', \"b\", true,]\n[[route]]\nx = -3\n")
	f.Add("[control]\r\nsocket = \"\"\r\n")
	f.Add("\"hostname\" = 'a\\b'\n[control]#c\nsocket=\"/s\"#c\n[maildrop]\ndir = \"/d\" # \"q\"\n")
	f.Add("route = 1\n[[route]]\n")
	f.Add("[[route]]\nx = 1\n[[route]]\nx = 1\n[queue]\nbackend = \"bbolt\"\nx = [ ]\ny = [+0, -1.5, 'é',]\n")
	f.Fuzz(func(t *testing.T, text string) {
		agree(t, text)
	})
}

// TestReadFile: readFile reads a file whole, small or larger than its
// first buffer, and its errors are os.ReadFile's kind: a missing file is
// fs.ErrNotExist, one this user may not read fs.ErrPermission.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4095, 4096, 4097, 100_000} {
		path := filepath.Join(dir, "f")
		want := strings.Repeat("x", size)
		if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(path)
		if err != nil || string(got) != want {
			t.Errorf("readFile of %d bytes: %d bytes, %v", size, len(got), err)
		}
	}
	if _, err := readFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("readFile of a missing file: %v, want fs.ErrNotExist naming it", err)
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked")
		os.WriteFile(locked, nil, 0o000)
		if _, err := readFile(locked); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("readFile of an unreadable file: %v, want fs.ErrPermission", err)
		}
	}
}
