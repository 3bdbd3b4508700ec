package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/demo"
)

// TestDoctorCmd runs `mailoauth doctor` against the emulator: the exit
// codes (0 healthy, 4 only a login missing, 1 a real problem) and the
// --json shape. The diagnoses themselves are tested in internal/doctor.
func TestDoctorCmd(t *testing.T) {
	env := startDemoEnv(t, false)

	// Not logged in: only a login is needed, offline or not.
	for _, args := range [][]string{{"doctor", demo.UserAccount, "--offline"}, {"doctor", demo.UserAccount}} {
		code, out, _ := runCLI(t, env.ConfigFile, "", args...)
		if code != ExitRelogin || !strings.Contains(out, "FAIL  login") || !strings.Contains(out, "fix: run mailoauth login demo") {
			t.Errorf("%v: exit %d, want %d; output:\n%s", args, code, ExitRelogin, out)
		}
	}

	// The app account needs no login: healthy, as JSON.
	code, out, errOut := runCLI(t, env.ConfigFile, "", "--json", "doctor", demo.AppAccount)
	var got struct {
		Account  string `json:"account"`
		OK       bool   `json:"ok"`
		Findings []struct {
			Step   string `json:"step"`
			Status string `json:"status"`
			What   string `json:"what"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output: %v\n%s\n%s", err, out, errOut)
	}
	if code != ExitOK || !got.OK || got.Account != demo.AppAccount {
		t.Fatalf("healthy app: exit %d, ok %v, account %q; output:\n%s", code, got.OK, got.Account, out)
	}
	steps := map[string]bool{}
	for _, f := range got.Findings {
		steps[f.Step] = true
		if f.Status != "ok" {
			t.Errorf("healthy app: %s %s", f.Status, f.What)
		}
	}
	if diff := cmp.Diff(map[string]bool{"config": true, "identity": true, "app": true, "tokens": true, "mail": true}, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}

	// A real problem: exit 1.
	code, out, _ = runCLI(t, env.ConfigFile, "", "doctor", "nosuch")
	if code != ExitError || !strings.Contains(out, "FAIL  account") {
		t.Errorf("unknown account: exit %d, want %d; output:\n%s", code, ExitError, out)
	}
}
