package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQueueDefaults(t *testing.T) {
	cfg := parse(t, "")
	host, _ := os.Hostname()
	if cfg.Queue.Backend != BackendBolt || cfg.Queue.Lease.Duration != 10*time.Minute || cfg.Queue.NodeName != host {
		t.Errorf("[queue] defaults = %+v, want bbolt, lease 10m, node name %q", cfg.Queue, host)
	}
	if cfg.Queue.Postgres() {
		t.Error("the default backend is not postgres")
	}
}

func TestQueueValidation(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []string // "" = valid
	}{
		{"postgres with a file", "[queue]\nbackend = \"postgres\"\ndsn_file = \"/etc/mailq/pg.dsn\"", nil},
		{"postgres with env", "[queue]\nbackend = \"postgres\"\ndsn_env = \"MAILQ_PG\"\nnode_name = \"mx1\"\nlease_time = \"15m\"", nil},
		{"unknown backend", "[queue]\nbackend = \"mysql\"", []string{`[queue]: key "backend" must be "bbolt" or "postgres", got "mysql"`}},
		{"postgres without a dsn", "[queue]\nbackend = \"postgres\"", []string{`needs exactly one of "dsn_file", "dsn_env" or "dsn", got 0`}},
		{"postgres with two dsns", "[queue]\nbackend = \"postgres\"\ndsn = \"host=/tmp\"\ndsn_env = \"X\"",
			[]string{`needs exactly one of "dsn_file", "dsn_env" or "dsn", got 2`}},
		{"dsn on bbolt", "[queue]\ndsn_file = \"/x\"", []string{`need backend = "postgres"`}},
		{"node name with a space", "[queue]\nnode_name = \"a b\"", []string{`key "node_name" must be a name without spaces`}},
		{"lease zero", "[queue]\nlease_time = \"0s\"", []string{`key "lease_time" must be a positive duration`}},
		{"lease shorter than a stalled attempt", pgQueue + "lease_time = \"5m\"\n" + relayRoute(""),
			[]string{`key "lease_time" (5m0s) must be longer than the longest attempt: route "relay" can wait 5m30s`}},
		{"slow route's own timeouts", pgQueue + "lease_time = \"10m\"\n" + relayRoute("connectiontimeout = 60000\nwritetimeout = 600000\n"),
			[]string{`route "relay" can wait 11m0s`}},
		{"mx route counts each address tried", pgQueue + "lease_time = \"2m\"\n[[route]]\nname = \"direct\"\ndomains = [\"*\"]\nmx = true\nmax_mx_tries = 3\ntimeout = 60000\nwritetimeout = 60000\n",
			[]string{`route "direct" can wait 2m30s`}},
		{"mx route within the lease", pgQueue + "lease_time = \"3m\"\n[[route]]\nname = \"direct\"\ndomains = [\"*\"]\nmx = true\nmax_mx_tries = 3\ntimeout = 60000\nwritetimeout = 60000\n", nil},
		{"bbolt ignores the lease", "[queue]\nlease_time = \"1m\"\n" + relayRoute("writetimeout = 600000\n"), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse refused a valid [queue]: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.text)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

const pgQueue = "[queue]\nbackend = \"postgres\"\ndsn_env = \"MAILQ_PG\"\n"

func relayRoute(extra string) string {
	return "[[route]]\nname = \"relay\"\ndomains = [\"*\"]\nhost = \"smtp.example.com\"\n" + extra
}

func TestQueueDSNIsMaskedAndWarned(t *testing.T) {
	const secret = "host=/run/pg user=mailq password=pg-s3cret dbname=mailq"
	cfg := parse(t, "[queue]\nbackend = \"postgres\"\ndsn = \""+secret+"\"")
	out := cfg.String()
	if strings.Contains(out, "pg-s3cret") || !strings.Contains(out, `dsn = "`+Masked+`"`) {
		t.Errorf("String() does not mask [queue] dsn:\n%s", out)
	}
	if cfg.Queue.DSN != secret {
		t.Errorf("String() changed the config itself: dsn = %q", cfg.Queue.DSN)
	}
	warned := false
	for _, w := range cfg.Warnings() {
		warned = warned || strings.Contains(w, `[queue]: key "dsn" holds the database password`)
		if strings.Contains(w, "pg-s3cret") {
			t.Errorf("a warning shows the password: %s", w)
		}
	}
	if !warned {
		t.Errorf("no warning about a password in [queue] dsn: %q", cfg.Warnings())
	}
	if got, err := cfg.Queue.ReadDSN(); err != nil || got != secret {
		t.Errorf("ReadDSN = %q, %v; want the literal dsn", got, err)
	}
}

func TestQueueReadDSN(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pg.dsn")
	if err := os.WriteFile(file, []byte("host=/run/pg password=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILQ_TEST_PG", "host=/run/pg password=from-env")
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	for _, tt := range []struct {
		name    string
		q       Queue
		want    string
		wantErr string
	}{
		{"file, trailing newline stripped", Queue{DSNFile: file}, "host=/run/pg password=from-file", ""},
		{"file under systemd credentials", Queue{DSNFile: "$CREDENTIALS_DIRECTORY/pg.dsn"}, "host=/run/pg password=from-file", ""},
		{"environment", Queue{DSNEnv: "MAILQ_TEST_PG"}, "host=/run/pg password=from-env", ""},
		{"missing file", Queue{DSNFile: filepath.Join(dir, "absent")}, "", "[queue]: dsn_file: cannot read the PostgreSQL connection string: open " + filepath.Join(dir, "absent")},
		{"empty file", Queue{DSNFile: empty}, "", "dsn_file: " + empty + " is empty"},
		{"unset variable", Queue{DSNEnv: "MAILQ_TEST_PG_UNSET"}, "", "dsn_env: environment variable MAILQ_TEST_PG_UNSET is not set or empty"},
		{"nothing", Queue{}, "", "needs one of dsn_file, dsn_env or dsn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.q.ReadDSN()
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ReadDSN = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadDSN error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "from-") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestCheckSecretsReadsTheDSN(t *testing.T) {
	cfg := parse(t, "[queue]\nbackend = \"postgres\"\ndsn_file = \""+filepath.Join(t.TempDir(), "absent")+"\"")
	errs := cfg.CheckSecrets()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "[queue]: dsn_file") {
		t.Errorf("CheckSecrets = %v, want one error naming [queue] dsn_file", errs)
	}
}
