package tokens

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL tests use MAILOAUTH_TEST_POSTGRES_URL when set; otherwise,
// in the integration run (MAILOAUTH_INTEGRATION=1), they start a throwaway
// cluster of Debian's postgresql package (.ci/setup.d/20-postgresql.sh) on
// 127.0.0.1 at a free port, as the postgres user when run as root (the
// server refuses to run as root), and remove it when the tests end.

var pg struct {
	once sync.Once
	url  string
	err  error
	stop func()
}

func postgresURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("MAILOAUTH_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	if os.Getenv("MAILOAUTH_INTEGRATION") != "1" {
		t.Skip("PostgreSQL tests: set MAILOAUTH_TEST_POSTGRES_URL, or MAILOAUTH_INTEGRATION=1 with postgresql installed")
	}
	pg.once.Do(func() { pg.url, pg.stop, pg.err = startPostgres() })
	if pg.err != nil {
		t.Fatalf("start a throwaway PostgreSQL: %v", pg.err)
	}
	return pg.url
}

func stopPostgres() {
	if pg.stop != nil {
		pg.stop()
	}
}

func startPostgres() (string, func(), error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql (.ci/setup.d/20-postgresql.sh)")
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "mailoauth-pg-")
	if err != nil {
		return "", nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, err
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", port, dir)
	if err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), stop, nil
}

// resetPostgres empties the store's tables so each suite test starts clean.
func resetPostgres(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP TABLE IF EXISTS mailoauth_records, mailoauth_leases, mailoauth_meta`)
	if err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationPostgresStore(t *testing.T) {
	url := postgresURL(t)
	storeSuite{fresh: func(t *testing.T) func(*Options) (Store, error) {
		resetPostgres(t, url)
		return func(opts *Options) (Store, error) { return Open(context.Background(), url, opts) }
	}}.run(t)
}
