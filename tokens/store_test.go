package tokens

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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

// TestSQLiteTightensStateDir: an existing state directory left open to
// other users (0755, as a hand-made mkdir gives) is tightened to 0700 when
// the store opens there; a folder elsewhere that the user named keeps its
// mode, since it may be shared on purpose.
func TestSQLiteTightensStateDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	tests := []struct {
		name      string
		stateDir  bool
		wantPerms fs.FileMode
	}{
		{"state dir is tightened", true, 0o700},
		{"other folder keeps its mode", false, 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
				t.Fatal(err)
			}
			state := filepath.Join(t.TempDir(), "state")
			if tt.stateDir {
				state = dir
			}
			t.Setenv("MAILOAUTH_STATE_DIR", state)
			s, err := Open(t.Context(), "sqlite:"+filepath.Join(dir, "tokens.db"), &Options{Key: testKey})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.wantPerms {
				t.Errorf("mode %v, want %v", got, tt.wantPerms)
			}
		})
	}
}
