package tokens

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestMemStore(t *testing.T) {
	storeSuite{fresh: func(t *testing.T) func(*Options) (Store, error) {
		b := newMemBackend()
		return func(opts *Options) (Store, error) {
			return newStore(context.Background(), b, "mem:", "", opts, slog.Default())
		}
	}}.run(t)
}

func TestSQLiteStore(t *testing.T) {
	storeSuite{fresh: func(t *testing.T) func(*Options) (Store, error) {
		url := "sqlite:" + filepath.Join(t.TempDir(), "tokens.db")
		return func(opts *Options) (Store, error) { return Open(context.Background(), url, opts) }
	}}.run(t)
}

func TestSQLitePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "mailoauth")
	path := filepath.Join(dir, "tokens.db")
	s, err := Open(t.Context(), "sqlite:"+path, &Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, nil, rec("a", KindRefresh, "x")) // makes the -wal file exist
	for p, want := range map[string]fs.FileMode{dir: 0o700 | fs.ModeDir, path: 0o600, path + "-wal": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}
