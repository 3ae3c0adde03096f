// Package pgtest runs a private PostgreSQL server for tests: one server per
// test binary, a fresh database per test.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// and in a test: dsn := pgtest.NewDatabase(t). The server starts on the
// first NewDatabase, from Debian's postgresql package
// (/usr/lib/postgresql/*/bin), initdb'd into a temporary directory, with its
// unix socket in that directory and no TCP listener at all
// (listen_addresses=”), fsync on. Running as root (CI), the server runs as
// the "postgres" user the package creates (or "nobody"), since PostgreSQL
// refuses to run as root. When PostgreSQL is not installed, NewDatabase
// fails the test under CI=true and skips it otherwise.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the database superuser initdb creates; DSNs connect as it
// (trust authentication over the private unix socket).
const Superuser = "postgres"

type server struct {
	dir  string // temp dir: data/, the socket, the log
	cmd  *exec.Cmd
	exit chan struct{}
}

var (
	startOnce sync.Once
	srv       *server
	startErr  error
	dbSeq     atomic.Int64
)

// Run runs the tests and stops the server if one was started. TestMain
// passes its result to os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	return code
}

// NewDatabase creates an empty database on the shared server and returns a
// DSN for it (keyword/value form: host=<socket dir> user=postgres dbname=t_N).
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	startOnce.Do(func() { srv, startErr = start() })
	if startErr != nil {
		if errors.Is(startErr, errAbsent) && os.Getenv("CI") != "true" {
			tb.Skipf("pgtest: %v (install Debian's postgresql package: .ci/install-peers; under CI=true this fails)", startErr)
		}
		tb.Fatalf("pgtest: %v", startErr)
	}
	return create(tb, "")
}

// Clone creates a database copied from the one dsn names (say, one whose
// schema a test migrated once), which must have no open connections, and
// returns its DSN. Copying a template is cheaper than building it again.
func Clone(tb testing.TB, dsn string) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatalf("pgtest: clone: %v", err)
	}
	return create(tb, cfg.Database)
}

func create(tb testing.TB, template string) string {
	tb.Helper()
	name := fmt.Sprintf("t_%d", dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.dsn("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connect to the server: %v", err)
	}
	defer conn.Close(ctx)
	sql := "CREATE DATABASE " + name
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, sql)
		// A template's last connection may still be closing on the server.
		if err == nil || template == "" || attempt == 100 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, err)
	}
	return srv.dsn(name)
}

// DSN returns the DSN of an existing database (e.g. "postgres") on the
// shared server, starting it if needed.
func DSN(tb testing.TB, dbname string) string {
	tb.Helper()
	NewDatabase(tb) // starts the server, or fails/skips as NewDatabase does
	return srv.dsn(dbname)
}

func (s *server) dsn(dbname string) string {
	return fmt.Sprintf("host=%s user=%s dbname=%s sslmode=disable", s.dir, Superuser, dbname)
}

var errAbsent = errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres)")

// binDir finds the newest installed server's bin directory.
func binDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", errAbsent
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) < version(found[j]) })
	return filepath.Dir(found[len(found)-1]), nil
}

func version(postgresPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(postgresPath))))
	return v
}

// runAs returns the credential to run the server with: nil when not root,
// else the postgres (or nobody) user's.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither user postgres nor nobody exists to run PostgreSQL as")
}

func start() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// A short path: the socket path must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", Superuser,
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-k", dir, // unix socket in the private directory
		"-c", "listen_addresses=", // no TCP at all
		"-c", "fsync=on", "-c", "synchronous_commit=on",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: the server goes when the test binary dies (SIGINT is
	// PostgreSQL's fast shutdown).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %v", err)
	}
	s := &server{dir: dir, cmd: cmd, exit: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exit) }()
	if err := s.waitReady(60 * time.Second); err != nil {
		s.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%v; server log:\n%s", err, log)
	}
	return s, nil
}

func (s *server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.exit:
			return errors.New("postgres exited during start")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v: %v", limit, err)
		}
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exit:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exit
	}
	os.RemoveAll(s.dir)
}
