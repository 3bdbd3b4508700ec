package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/demo"
	"github.com/mailoauth/mailoauth/internal/emulator"
)

// runCLI runs one command line in-process against cfgFile and returns the
// exit code and both streams.
func runCLI(t *testing.T, cfgFile, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	g := &Globals{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	code = Run(ctx, g, append([]string{"--config", cfgFile}, args...))
	return code, out.String(), errOut.String()
}

// startDemoEnv starts the emulator with its Exchange and Graph servers
// and a config of two accounts, demo (device code) and demo-app (client
// credentials with a certificate), signed in unless told otherwise.
func startDemoEnv(t *testing.T, signIn bool) *demo.Env {
	t.Helper()
	env, err := demo.StartEnv(demo.EnvOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	if signIn {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, name := range []string{demo.UserAccount, demo.AppAccount} {
			if err := env.SignIn(ctx, name); err != nil {
				t.Fatalf("sign in %s: %v", name, err)
			}
		}
	}
	return env
}

func ptr[T any](v T) *T { return &v }

// TestCheckEmulator runs `mailoauth check` against the emulator's Exchange
// and Graph servers: every protocol passes for a signed-in user and app,
// and each setup mistake shows Exchange's exact reply and our hint.
func TestCheckEmulator(t *testing.T) {
	env := startDemoEnv(t, true)
	tenant := env.Demo.TenantID
	appID := env.Demo.ConfidentialID

	tests := []struct {
		name     string
		args     []string
		setup    func(t *testing.T) // changes the emulator; undone by undo
		undo     func(t *testing.T)
		wantCode int
		want     []string // substrings of stdout
		notWant  []string
	}{
		{
			name: "user, every protocol", args: []string{"check", "demo"}, wantCode: ExitOK,
			want: []string{
				"IMAP imaps://", "ok   authenticate  logged in with XOAUTH2 as alice@contoso.com",
				"POP3 pop3s://", "SMTP smtp://", "ok   starttls", "GRAPH https://", "/v1.0/me as alice@contoso.com", "ok   list",
			},
			notWant: []string{"FAIL"},
		},
		{
			name: "app, every protocol", args: []string{"check", "demo-app"}, wantCode: ExitOK,
			want:    []string{"IMAP imaps://", "POP3 pop3s://", "SMTP smtp://", "/v1.0/users/alice@contoso.com as alice@contoso.com"},
			notWant: []string{"FAIL"},
		},
		{
			name: "smtp auth disabled for the mailbox", args: []string{"check", "demo", "--smtp"}, wantCode: ExitError,
			setup: func(t *testing.T) {
				must(t, env.Emulator.UpdateUser(emulator.UserUpdate{User: env.User, SMTPAuth: ptr("disabled")}))
			},
			undo: func(t *testing.T) {
				must(t, env.Emulator.UpdateUser(emulator.UserUpdate{User: env.User, SMTPAuth: ptr("")}))
			},
			want: []string{
				"FAIL authenticate",
				"server said: 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
				"hint: Authenticated SMTP is turned off for this mailbox", "Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false",
			},
			notWant: []string{"IMAP", "GRAPH"},
		},
		{
			name: "smtp auth disabled for the tenant", args: []string{"check", "demo", "--smtp"}, wantCode: ExitError,
			setup: func(t *testing.T) {
				must(t, env.Emulator.UpdateTenant(emulator.TenantUpdate{Tenant: tenant, SMTPAuth: ptr(false)}))
			},
			undo: func(t *testing.T) {
				must(t, env.Emulator.UpdateTenant(emulator.TenantUpdate{Tenant: tenant, SMTPAuth: ptr(true)}))
			},
			want: []string{"server said: 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
				"hint: Authenticated SMTP is turned off for the whole tenant"},
		},
		{
			name: "app without FullAccess on the mailbox", args: []string{"check", "demo-app", "--imap", "--pop3", "--smtp"}, wantCode: ExitError,
			setup: func(t *testing.T) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: tenant, ClientID: appID, Mailbox: env.User, FullAccess: ptr(false)}))
			},
			undo: func(t *testing.T) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: tenant, ClientID: appID, Mailbox: env.User, FullAccess: ptr(true)}))
			},
			want: []string{
				"server said: NO AUTHENTICATE failed.",
				"server said: -ERR Authentication failure: unknown user name or bad password.",
				"server said: 535 5.7.3 Authentication unsuccessful",
				"has FullAccess on the mailbox (Add-MailboxPermission)",
			},
		},
		{
			name: "app without the Exchange service principal", args: []string{"check", "demo-app", "--imap"}, wantCode: ExitError,
			setup: func(t *testing.T) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: tenant, ClientID: appID, ServicePrincipal: ptr(false)}))
			},
			undo: func(t *testing.T) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: tenant, ClientID: appID, ServicePrincipal: ptr(true)}))
			},
			want: []string{"server said: NO AUTHENTICATE failed.", "New-ServicePrincipal"},
		},
		{
			name: "imap disabled for the mailbox", args: []string{"check", "demo", "--imap", "--graph"}, wantCode: ExitError,
			setup: func(t *testing.T) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: tenant, Mailbox: env.User, IMAPEnabled: ptr(false)}))
			},
			undo: func(t *testing.T) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: tenant, Mailbox: env.User, IMAPEnabled: ptr(true)}))
			},
			// Graph still works: only the failing protocol fails.
			want: []string{"FAIL authenticate", "server said: NO AUTHENTICATE failed.", "IMAP is enabled for the mailbox", "ok   list"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
				t.Cleanup(func() { tt.undo(t) })
			}
			code, out, errOut := runCLI(t, env.ConfigFile, "", tt.args...)
			checkRun(t, code, tt.wantCode, out, errOut, tt.want, tt.notWant)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckJSON checks the machine output: one entry per protocol with the
// report's steps, and ok false with the server's reply on a failure.
func TestCheckJSON(t *testing.T) {
	env := startDemoEnv(t, true)
	must(t, env.Emulator.UpdateUser(emulator.UserUpdate{User: env.User, SMTPAuth: ptr("disabled")}))
	code, out, errOut := runCLI(t, env.ConfigFile, "", "check", "demo", "--imap", "--smtp", "--json")
	if code != ExitError {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, ExitError, errOut)
	}
	var got struct {
		Account string
		OK      bool
		Checks  []struct {
			Protocol string
			OK       bool
			Report   struct {
				Mechanism string
				Steps     []struct {
					Name, Reply string
					OK          bool
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	type summary struct {
		Protocol, Mechanism, LastStep, Reply string
		OK                                   bool
	}
	var sums []summary
	for _, c := range got.Checks {
		last := c.Report.Steps[len(c.Report.Steps)-1]
		sums = append(sums, summary{c.Protocol, c.Report.Mechanism, last.Name, last.Reply, c.OK})
	}
	want := []summary{
		{"imap", "XOAUTH2", "inbox", "", true},
		{"smtp", "XOAUTH2", "authenticate", "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.", false},
	}
	if diff := cmp.Diff(want, sums); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
	if got.Account != "demo" || got.OK {
		t.Errorf("account %q ok %v, want demo false", got.Account, got.OK)
	}
}

// TestCheckNeedsLogin: an account that never signed in exits 4 and says
// which command to run, without touching the servers.
func TestCheckNeedsLogin(t *testing.T) {
	env := startDemoEnv(t, false)
	code, out, errOut := runCLI(t, env.ConfigFile, "", "check", "demo", "--imap")
	if code != ExitRelogin {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitRelogin, out, errOut)
	}
	if !strings.Contains(errOut, "mailoauth login demo") {
		t.Errorf("stderr does not name the login command:\n%s", errOut)
	}
	if !strings.Contains(out, "FAIL token") {
		t.Errorf("stdout does not show the token step failing:\n%s", out)
	}
}

// TestCheckFlags covers the command line without any server.
func TestCheckFlags(t *testing.T) {
	env := startDemoEnv(t, false)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no account", []string{"check"}, ExitUsage, "accepts 1 arg"},
		{"unknown account", []string{"check", "nope"}, ExitConfig, "nope"},
		{"unknown flag", []string{"check", "demo", "--imap4"}, ExitUsage, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, env.ConfigFile, "", tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}

// TestCheckSkipsUncoveredProtocols: an account whose scopes name only
// imap and smtp has POP3 and Graph servers too (the Microsoft defaults);
// `check` without flags checks IMAP and SMTP, says why it skipped the
// others, and passes; an explicit --graph is refused with the preset to add,
// as `token --resource graph` says.
func TestCheckSkipsUncoveredProtocols(t *testing.T) {
	env := startDemoEnv(t, false)
	data, err := os.ReadFile(env.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the demo user account with mail-only scopes.
	doc := string(data)
	start := strings.Index(doc, "[accounts."+demo.UserAccount+"]")
	end := strings.Index(doc, "[accounts."+demo.AppAccount+"]")
	mailOnly := strings.Replace(doc[start:end], "[accounts."+demo.UserAccount+"]", "[accounts.mailonly]", 1)
	mailOnly = strings.Replace(mailOnly, `scopes = ["imap", "pop", "smtp", "graph-mail", "offline_access"]`, `scopes = ["imap", "smtp", "offline_access"]`, 1)
	if !strings.Contains(mailOnly, `scopes = ["imap", "smtp", "offline_access"]`) {
		t.Fatalf("demo config changed shape:\n%s", doc)
	}
	if err := os.WriteFile(env.ConfigFile, []byte(doc+"\n"+mailOnly), 0o600); err != nil {
		t.Fatal(err)
	}
	if env.Config, err = config.Load(env.ConfigFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.SignIn(ctx, "mailonly"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		args        []string
		wantCode    int
		want        []string // substrings of stdout
		notWant     []string
		wantErr     string // substring of stderr
		wantSkipped []string
	}{
		{
			name: "no flags: covered protocols only", args: []string{"check", "mailonly"}, wantCode: ExitOK,
			want: []string{
				"POP3 skipped: account mailonly: its scopes include none for pop (POP.AccessAsUser.All); add pop to scopes and log in again",
				"GRAPH skipped: account mailonly: its scopes include none for graph; add graph-mail to scopes and log in again",
				"IMAP imaps://", "SMTP smtp://", "ok   authenticate",
			},
			notWant: []string{"FAIL", "POP3 pop3s://", "GRAPH https://"},
		},
		{
			name: "explicit graph", args: []string{"check", "mailonly", "--graph"}, wantCode: ExitConfig,
			wantErr: "add graph-mail to scopes", notWant: []string{"IMAP", "GRAPH"},
		},
		{
			name: "explicit graph with imap", args: []string{"check", "mailonly", "--imap", "--graph"}, wantCode: ExitConfig,
			wantErr: "add graph-mail to scopes", notWant: []string{"IMAP"},
		},
		{
			name: "json lists the skipped", args: []string{"check", "mailonly", "--json"}, wantCode: ExitOK,
			wantSkipped: []string{"pop3", "graph"},
		},
		{
			name: "full scopes skip nothing", args: []string{"check", "demo", "--json"}, wantCode: ExitRelogin, // demo is not signed in here
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env.ConfigFile, "", tt.args...)
			checkRun(t, code, tt.wantCode, out, errOut, tt.want, tt.notWant)
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
			if slices.Contains(tt.args, "--json") {
				var got struct {
					Skipped []struct{ Protocol, Reason string }
				}
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, out)
				}
				var protos []string
				for _, s := range got.Skipped {
					protos = append(protos, s.Protocol)
					if !strings.Contains(s.Reason, "add ") {
						t.Errorf("skip reason %q does not say what to add", s.Reason)
					}
				}
				if diff := cmp.Diff(tt.wantSkipped, protos); diff != "" {
					t.Errorf("skipped (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// checkRun reports, without stopping the test, an exit code other than
// wantCode and every string of want missing from stdout or of notWant
// present in it: the checks of the check table tests.
func checkRun(t *testing.T, code, wantCode int, out, errOut string, want, notWant []string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	for _, w := range notWant {
		if strings.Contains(out, w) {
			t.Errorf("stdout has %q:\n%s", w, out)
		}
	}
}
