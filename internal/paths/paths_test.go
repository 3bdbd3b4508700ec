package paths

import (
	"os"
	"path/filepath"
	"runtime"
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

func TestResolve(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	for in, want := range map[string]string{"app.pfx": "/etc/m/app.pfx", "/abs/x": "/abs/x", "~/k.pem": "/home/u/k.pem", "../x": "/etc/x"} {
		got, err := Resolve("/etc/m", in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
