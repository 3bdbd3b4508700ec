package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// TestRun runs the whole demo against the in-process emulator: every step
// must pass and be printed.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, &out, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for i := 1; i <= Steps; i++ {
		if !strings.Contains(out.String(), fmt.Sprintf("[%d/%d]", i, Steps)) {
			t.Errorf("step %d not printed:\n%s", i, out.String())
		}
	}
	for _, want := range []string{
		"A user would see: To sign in, open https://127.0.0.1:",
		"approves that code itself",
		"ok   authenticate  logged in with XOAUTH2 as alice@contoso.com",
		"ok   send          accepted by Graph (202)",
		"/v1.0/users/alice@contoso.com",
		"All 7 steps worked",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunFailure breaks the scenario and checks the demo stops at the
// right step with the server's reason and our hint.
func TestRunFailure(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(*Env) error
		wantStep int
		want     []string
	}{
		{
			name: "smtp auth off for the mailbox",
			prepare: func(env *Env) error {
				off := "disabled"
				return env.Emulator.UpdateUser(emulator.UserUpdate{User: env.User, SMTPAuth: &off})
			},
			wantStep: 4,
			want:     []string{"FAILED at step 4 (send over SMTP)", "535 5.7.139", "hint: Authenticated SMTP is turned off for this mailbox"},
		},
		{
			name: "app loses FullAccess",
			prepare: func(env *Env) error {
				no := false
				return env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, ClientID: env.Demo.ConfidentialID, Mailbox: env.User, FullAccess: &no})
			},
			wantStep: 7,
			want:     []string{"FAILED at step 7", "NO AUTHENTICATE failed.", "Add-MailboxPermission"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out bytes.Buffer
			err := Run(ctx, &out, Options{Dir: t.TempDir(), Prepare: tt.prepare})
			var se *StepError
			if !errors.As(err, &se) || se.Step != tt.wantStep {
				t.Fatalf("error %v, want a StepError at step %d\n%s", err, tt.wantStep, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
