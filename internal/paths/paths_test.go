package paths

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStateAndRuntimeDir(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name        string
		env         map[string]string
		wantState   string
		wantRuntime string
	}{
		{"override wins", map[string]string{"MAILOAUTH_STATE_DIR": "/s", "XDG_STATE_HOME": "/x", "XDG_RUNTIME_DIR": "/run/user/1"}, "/s", "/run/user/1/mailoauth"},
		{"xdg state", map[string]string{"XDG_STATE_HOME": "/x"}, "/x/mailoauth", "/x/mailoauth"},
		{"relative xdg ignored", map[string]string{"XDG_STATE_HOME": "rel"}, filepath.Join(home, ".local/state/mailoauth"), filepath.Join(home, ".local/state/mailoauth")},
		{"home fallback", nil, filepath.Join(home, ".local/state/mailoauth"), filepath.Join(home, ".local/state/mailoauth")},
		{"tilde override", map[string]string{"MAILOAUTH_STATE_DIR": "~/st"}, filepath.Join(home, "st"), filepath.Join(home, "st")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			for _, k := range []string{"MAILOAUTH_STATE_DIR", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"} {
				t.Setenv(k, tt.env[k])
			}
			state, err := StateDir()
			if err != nil {
				t.Fatal(err)
			}
			rt, err := RuntimeDir()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantState, tt.wantRuntime}, []string{state, rt}); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("XDG_CONFIG_HOME applies on Linux")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	t.Setenv(EnvConfig, "")
	got, err := ConfigFile("")
	if err != nil {
		t.Fatal(err)
	}
	if got != "/cfg/mailoauth/config.toml" {
		t.Errorf("default: got %s", got)
	}
	t.Setenv(EnvConfig, "/env.toml")
	if got, _ := ConfigFile(""); got != "/env.toml" {
		t.Errorf("env: got %s", got)
	}
	if got, _ := ConfigFile("~/flag.toml"); got != filepath.Join(home, "flag.toml") {
		t.Errorf("flag: got %s", got)
	}
}

func TestEnsureDirTightens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("mode = %v, want 0700", got)
	}
}

// TestPrivateDir: a missing folder is created 0700 wherever it is; an
// existing one is tightened only when it is the state directory; a sticky
// (shared, /tmp-like) state directory is refused rather than taken over.
func TestPrivateDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	tests := []struct {
		name    string
		exists  fs.FileMode // 0 = missing
		isState bool
		want    fs.FileMode
		wantErr string
	}{
		{name: "missing state dir", isState: true, want: 0o700},
		{name: "missing other dir", want: 0o700},
		{name: "open state dir tightened", exists: 0o755, isState: true, want: 0o700},
		{name: "group-readable state dir tightened", exists: 0o750, isState: true, want: 0o700},
		{name: "open other dir kept", exists: 0o755, want: 0o755},
		{name: "sticky state dir refused", exists: 0o777 | fs.ModeSticky, isState: true, want: 0o777, wantErr: "shared folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "b")
			if tt.exists != 0 {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tt.exists); err != nil {
					t.Fatal(err)
				}
			}
			state := filepath.Join(t.TempDir(), "state")
			if tt.isState {
				state = dir + "/" // not cleaned, as a user may write it
			}
			t.Setenv(EnvStateDir, state)
			err := PrivateDir(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	for in, want := range map[string]string{"app.pfx": "/etc/m/app.pfx", "/abs/x": "/abs/x", "~/k.pem": "/home/u/k.pem", "../x": "/etc/x"} {
		got, err := Resolve("/etc/m", in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
