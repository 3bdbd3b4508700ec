package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the testscript scripts run `mailoauth` as a real command:
// the test binary re-executes itself as cli.Main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mailoauth": func() { os.Exit(Main()) },
	})
}

// TestScripts runs the acceptance scripts in testdata/script, each in its
// own directory with its own config, state and runtime folders.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "home", ".config"))
			env.Setenv("MAILOAUTH_STATE_DIR", filepath.Join(env.WorkDir, "state"))
			env.Setenv("XDG_RUNTIME_DIR", "")
			env.Setenv("XDG_STATE_HOME", "")
			env.Setenv("MAILOAUTH_CONFIG", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
			"waitfile": cmdWaitFile,
		},
	})
}

// cmdExitCode is `exitcode N PROGRAM ARGS...`: run the program and expect
// exit code N (testscript's `! exec` only says "not zero"). stdout and
// stderr stay available to the next stdout/stderr commands.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// cmdWaitFile is `waitfile FILE`: wait up to 10 s for a background command
// to create FILE (the emulator's --ca-out, written once it listens).
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile file")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(ts.MkAbs(args[0])); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 10s", args[0])
		}
	}
}

// TestConfigCmdFlags checks the command line of `config check` and `config
// path` apart from what they do (the gh Options + runF pattern).
func TestConfigCmdFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantJSON bool
		wantCfg  string
		wantCode int
		wantRun  string
	}{
		{"check", []string{"config", "check"}, false, "", ExitOK, "check"},
		{"check json", []string{"--json", "config", "check"}, true, "", ExitOK, "check"},
		{"check json after", []string{"config", "check", "--json", "--config", "/x/c.toml"}, true, "/x/c.toml", ExitOK, "check"},
		{"path", []string{"config", "path"}, false, "", ExitOK, "path"},
		{"check extra argument", []string{"config", "check", "oops"}, false, "", ExitUsage, ""},
		{"bad flag", []string{"config", "check", "--nope"}, false, "", ExitUsage, ""},
		{"unknown command", []string{"confg"}, false, "", ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MAILOAUTH_CONFIG", "")
			var out, errOut bytes.Buffer
			g := &Globals{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut}
			var ran string
			var gotJSON bool
			root := NewRootCmd(g)
			for _, c := range root.Commands() {
				if c.Name() != "config" {
					continue
				}
				root.RemoveCommand(c)
				c.ResetCommands()
				c.AddCommand(
					newConfigCheckCmd(g, func(o *ConfigCheckOptions) error { ran, gotJSON = "check", o.JSON; return nil }),
					newConfigPathCmd(g, func(o *ConfigPathOptions) error { ran, gotJSON = "path", o.JSON; return nil }),
				)
				root.AddCommand(c)
			}
			root.SetArgs(tt.args)
			root.SetOut(&out)
			root.SetErr(&errOut)
			code := ExitCode(usageError(root.ExecuteContext(context.Background())))
			got := []any{code, ran, gotJSON, g.ConfigPath}
			want := []any{tt.wantCode, tt.wantRun, tt.wantJSON, tt.wantCfg}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s\nstderr: %s", diff, errOut.String())
			}
		})
	}
}

func TestRedactStore(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":    "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":       "postgres://u@h/db",
		"sqlite:/var/x/tokens.db": "sqlite:/var/x/tokens.db",
	} {
		if got := redactStore(in); got != want {
			t.Errorf("redactStore(%q) = %q, want %q", in, got, want)
		}
	}
}
