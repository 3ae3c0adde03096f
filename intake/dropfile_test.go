package intake

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
	"golang.org/x/sys/unix"
	"mailq/queue"
)

func makeMaildrop(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"tmp", "new", "failed"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDropFile(t *testing.T) {
	dir := makeMaildrop(t)
	env := queue.Envelope{
		Sender: "a@example.com", Ret: "HDRS", EnvID: "id 1+2",
		Recipients: []queue.RecipientSpec{
			{Address: "b@example.org"},
			{Address: "c@example.org", Notify: "FAILURE,DELAY", ORCPT: "rfc822;C x@example.org"},
		},
	}
	msg := "Subject: hi\r\n\r\nbody\r\n"
	path, err := DropFile(dir, env, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != filepath.Join(dir, "new") {
		t.Errorf("path %s is not in new/", path)
	}
	want := "a@example.com RET=HDRS ENVID=id+201+2B2\n" +
		"b@example.org\n" +
		"c@example.org NOTIFY=FAILURE,DELAY ORCPT=rfc822;C+20x@example.org\n" +
		"\n" + msg
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("file content\n%q\nwant\n%q", got, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ not empty: %v", left)
	}
	// The file parses back to the same envelope.
	f, _ := os.Open(path)
	defer f.Close()
	penv, body, err := ParseEnvelopeFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if penv.Sender != env.Sender || penv.Ret != "HDRS" || penv.EnvID != env.EnvID || len(penv.Recipients) != 2 ||
		penv.Recipients[1] != env.Recipients[1] || penv.Recipients[0] != env.Recipients[0] {
		t.Errorf("parsed envelope %+v, want %+v", penv, env)
	}
	b, _ := readAllString(body)
	if b != msg {
		t.Errorf("parsed body %q, want %q", b, msg)
	}
}

func TestDropFileRefusesInvalid(t *testing.T) {
	dir := makeMaildrop(t)
	_, err := DropFile(dir, queue.Envelope{Sender: "a@example.com", Recipients: []queue.RecipientSpec{{Address: "b@x\r\nc"}}}, strings.NewReader("x"))
	if err == nil {
		t.Fatal("DropFile accepted a recipient with CRLF")
	}
	for _, sub := range []string{"tmp", "new"} {
		if left, _ := os.ReadDir(filepath.Join(dir, sub)); len(left) != 0 {
			t.Errorf("%s/ not empty: %v", sub, left)
		}
	}
}

func TestParseHeaderRecipients(t *testing.T) {
	tests := []struct {
		name    string
		fields  map[string][]string
		want    []string
		wantErr bool
	}{
		{"simple", map[string][]string{"To": {"a@example.com"}}, []string{"a@example.com"}, false},
		{"all three with names", map[string][]string{
			"To":  {`"Doe, John" <john@example.com>, jane@example.com`},
			"Cc":  {"=?utf-8?q?J=C3=B6rg?= <joerg@example.com>"},
			"Bcc": {"hidden@example.com"},
		}, []string{"john@example.com", "jane@example.com", "joerg@example.com", "hidden@example.com"}, false},
		{"group", map[string][]string{"To": {"team: a@example.com, b@example.com;, c@example.com"}},
			[]string{"a@example.com", "b@example.com", "c@example.com"}, false},
		{"empty group", map[string][]string{"To": {"undisclosed-recipients:;"}, "Bcc": {"x@example.com"}}, []string{"x@example.com"}, false},
		{"unknown charset", map[string][]string{"To": {"=?x-unknown?q?abc?= <a@example.com>"}}, []string{"a@example.com"}, false},
		{"duplicates", map[string][]string{"To": {"a@example.com"}, "Cc": {"a@example.com"}}, []string{"a@example.com"}, false},
		{"repeated field", map[string][]string{"To": {"a@example.com", "b@example.com"}}, []string{"a@example.com", "b@example.com"}, false},
		{"empty bcc", map[string][]string{"To": {"a@example.com"}, "Bcc": {""}}, []string{"a@example.com"}, false},
		{"garbage", map[string][]string{"To": {"<<<"}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeaderRecipients(mail.HeaderFromMap(tt.fields))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v, want error", got)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	h := mail.HeaderFromMap(map[string][]string{"To": {"a@example.com"}, "Bcc": {"b@example.com"}})
	StripBcc(&h)
	if h.Has("Bcc") || !h.Has("To") {
		t.Errorf("StripBcc left %v", h.Map())
	}
}

func readAllString(r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	return string(b), err
}

// BenchmarkDropCommit compares the two ways DropFile makes a rename into
// new/ durable: fsync of the directory (writers that may open it) and
// syncfs of the filesystem (every other local user). Both include the
// file's own fsync, as DropFile does.
func BenchmarkDropCommit(b *testing.B) {
	for _, c := range []struct {
		name   string
		commit func(dir string, f *os.File) error
	}{
		{"fsync-dir", func(dir string, _ *os.File) error { return SyncDir(dir) }},
		{"syncfs", func(_ string, f *os.File) error { return unix.Syncfs(int(f.Fd())) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; i < b.N; i++ {
				tmp, final := filepath.Join(dir, "t"), filepath.Join(dir, fmt.Sprint(i))
				f, err := os.Create(tmp)
				if err != nil {
					b.Fatal(err)
				}
				f.WriteString("a@example.com\nb@example.org\n\nSubject: x\n\nbody\n")
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(tmp, final); err != nil {
					b.Fatal(err)
				}
				if err := c.commit(dir, f); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
