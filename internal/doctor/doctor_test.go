package doctor

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/demo"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/tokens"
)

// wantFail is one FAIL line a setup mistake must produce.
type wantFail struct {
	What    string
	AADSTS  int
	Relogin bool
	// Words and Fix must appear in the finding's text (compared apart).
	Words, Fix string
}

// TestDoctorEmulator reproduces each setup mistake against the emulator
// (identity platform, Exchange IMAP/POP3/SMTP and Graph) and checks the
// doctor's FAIL lines and fixes; a healthy account gets nothing but ok.
func TestDoctorEmulator(t *testing.T) {
	const user = "alice@contoso.com"
	ptr := func(b bool) *bool { return &b }
	tests := []struct {
		name    string
		account string
		signIn  bool
		offline bool
		// config rewrites the account's table (after its header line).
		config func(t *testing.T, env *demo.Env, table string) string
		// setup changes the emulator.
		setup func(t *testing.T, env *demo.Env)
		want  []wantFail
		// warns are the What of every warn line.
		warns []string
		// skew moves the doctor's clock.
		skew time.Duration
	}{
		{name: "healthy user", account: demo.UserAccount, signIn: true},
		{name: "healthy app", account: demo.AppAccount},
		{name: "healthy user offline", account: demo.UserAccount, signIn: true, offline: true},
		{
			name: "config error", account: demo.UserAccount,
			config: func(t *testing.T, env *demo.Env, table string) string { return table + "bogus_key = 1\n" },
			want:   []wantFail{{What: "config file", Words: "config.toml:", Fix: "correct that line"}},
		},
		{
			name: "wrong tenant", account: demo.UserAccount, signIn: true,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return setKey(table, "tenant", "fabrikam.onmicrosoft.com")
			},
			want: []wantFail{{What: "tenant", AADSTS: 90002, Words: "not found: a typo, or the wrong cloud", Fix: "Directory (tenant) ID"}},
		},
		{
			name: "wrong client id", account: demo.UserAccount, signIn: true,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return setKey(table, "client_id", "11111111-2222-4333-8444-555555555555")
			},
			want: []wantFail{{What: "app registration", AADSTS: 700016, Words: "no app with client id 11111111-2222-4333-8444-555555555555", Fix: "Application (client) ID"}},
		},
		{
			name: "public client flows off", account: demo.UserAccount, signIn: true,
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.UpdateApp(emulator.AppUpdate{ClientID: env.Demo.PublicClientID, AllowPublicClient: ptr(false)}))
			},
			want: []wantFail{{What: "public client flows", AADSTS: 7000218, Words: "\"Allow public client flows\" is off",
				Fix: "Authentication → Advanced settings → \"Allow public client flows\" → Yes"}},
		},
		{
			name: "secret on a public client", account: demo.UserAccount, signIn: true,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return useSecret(t, env, table, "some~secret.value")
			},
			want:  []wantFail{{What: "public client flows", AADSTS: 700025, Words: "the app is a public client", Fix: "remove client_secret"}},
			warns: []string{"flow"},
		},
		{
			name: "single-tenant app on common", account: demo.UserAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return setKey(setKey(table, "client_id", env.Demo.ConfidentialID), "tenant", "common")
			},
			want: []wantFail{{What: "app registration", AADSTS: 50194, Words: "single-tenant", Fix: "set tenant"},
				{What: "login", Relogin: true, Words: "not logged in", Fix: "run mailoauth login demo"}},
		},
		{
			name: "secret id instead of value", account: demo.AppAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return useSecret(t, env, table, "5e7d1c3b-2a4f-4b6e-8d9c-0a1b2c3d4e5f")
			},
			want:  []wantFail{{What: "app credential", AADSTS: 7000215, Words: "secret's ID was pasted instead of its Value", Fix: "copy the Value column"}},
			warns: []string{"client_secret"},
		},
		{
			name: "expired secret", account: demo.AppAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return useSecret(t, env, table, env.Demo.ConfidentialSecret)
			},
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.UpdateApp(emulator.AppUpdate{ClientID: env.Demo.ConfidentialID, ExpireSecrets: true}))
			},
			want: []wantFail{{What: "app credential", AADSTS: 7000222, Words: "the client secret has expired", Fix: "New client secret"}},
		},
		{
			name: "web app with an expired secret", account: demo.UserAccount, signIn: true,
			config: func(t *testing.T, env *demo.Env, table string) string {
				table = setKey(setKey(table, "client_id", env.Demo.ConfidentialID), "flow", "authcode")
				table = setKey(table, "redirect_uri", "http://localhost/callback")
				table = regexp.MustCompile(`(?m)^scopes = .*\n`).ReplaceAllString(table, "scopes = [\"imap\", \"smtp\", \"offline_access\"]\n")
				return useSecret(t, env, table, env.Demo.ConfidentialSecret)
			},
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.UpdateApp(emulator.AppUpdate{ClientID: env.Demo.ConfidentialID, ExpireSecrets: true}))
			},
			want: []wantFail{{What: "app credential", AADSTS: 7000222, Words: "the client secret has expired", Fix: "New client secret"}},
		},
		{
			name: "certificate not uploaded", account: demo.AppAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return setKey(table, "certificate", newCertificate(t, env.Dir))
			},
			want: []wantFail{{What: "app credential", AADSTS: 700027, Words: "is not registered on the app", Fix: "Upload certificate"}},
		},
		{
			name: "expired certificate", account: demo.AppAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return setKey(table, "certificate", writeCertificate(t, env.Dir, time.Now().Add(-48*time.Hour)))
			},
			want: []wantFail{{What: "certificate", Words: "expired on", Fix: "create a new certificate"}},
		},
		{
			name: "pfx with the wrong password", account: demo.AppAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				pfx, pw := filepath.Join(env.Dir, "app.pfx"), filepath.Join(env.Dir, "pfx-password")
				must(t, os.WriteFile(pfx, pfxOf(t, env.AppCertFile, "the right one"), 0o600))
				must(t, os.WriteFile(pw, []byte("a wrong one\n"), 0o600))
				return setKey(setKey(table, "certificate", pfx), "certificate_password", "file:"+pw)
			},
			want: []wantFail{{What: "certificate", Words: "does not load", Fix: "check certificate_password"}},
		},
		{
			name: "secret reference missing", account: demo.AppAccount,
			config: func(t *testing.T, env *demo.Env, table string) string {
				table = useSecret(t, env, table, "x")
				return setKey(table, "client_secret", "file:"+filepath.Join(env.Dir, "no-such-file"))
			},
			want: []wantFail{{What: "client_secret", Words: "does not resolve", Fix: "create " + "/"}},
		},
		{
			name: "untrusted CA", account: demo.UserAccount, signIn: true,
			config: func(t *testing.T, env *demo.Env, table string) string {
				return regexp.MustCompile(`(?m)^ca_file = .*\n`).ReplaceAllString(table, "")
			},
			want: []wantFail{{What: "identity server", Words: "signed by an authority this computer does not trust", Fix: "set ca_file"}},
		},
		{
			name: "clock off", account: demo.UserAccount, signIn: true, skew: -10 * time.Minute,
			warns: []string{"clock"},
		},
		{
			name: "store key changed", account: demo.UserAccount, signIn: true,
			setup: func(t *testing.T, env *demo.Env) {
				key := make([]byte, 32)
				rand.Read(key)
				must(t, os.WriteFile(filepath.Join(env.Dir, "state", "tokens.db.key"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600))
			},
			want: []wantFail{{What: "token store", Words: "cannot be opened", Fix: "bring back the old key (the key file"}},
		},
		{
			name: "refresh cooling down", account: demo.UserAccount, signIn: true,
			setup: func(t *testing.T, env *demo.Env) {
				m, err := env.Open(context.Background(), nil)
				must(t, err)
				defer m.Close()
				now := time.Now()
				must(t, m.Store().Put(context.Background(), nil, tokens.StateRecord(demo.UserAccount,
					tokens.State{LastError: "token endpoint: HTTP 503", LastErrorAt: now, RetryAfter: now.Add(time.Hour)})))
			},
			warns: []string{"login", "refresh"},
		},
		{
			name: "not logged in", account: demo.UserAccount,
			want: []wantFail{{What: "login", Relogin: true, Words: "not logged in", Fix: "run mailoauth login demo"}},
		},
		{
			name: "revoked refresh token", account: demo.UserAccount, signIn: true,
			setup: func(t *testing.T, env *demo.Env) { must(t, env.Emulator.RevokeUserSessions(user)) },
			want:  []wantFail{{What: "refresh Exchange", AADSTS: 50173, Relogin: true, Words: "it was revoked", Fix: "run mailoauth login demo"}},
		},
		{
			name: "smtp auth disabled for the mailbox", account: demo.UserAccount, signIn: true,
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.UpdateUser(emulator.UserUpdate{User: user, SMTPAuth: new("disabled")}))
			},
			want: []wantFail{{What: "SMTP", Words: "SMTP AUTH turned off for the mailbox alice@contoso.com",
				Fix: "Set-CASMailbox -Identity alice@contoso.com -SmtpClientAuthenticationDisabled $false"}},
		},
		{
			name: "smtp auth disabled for the tenant", account: demo.AppAccount,
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.UpdateTenant(emulator.TenantUpdate{Tenant: env.Demo.TenantID, SMTPAuth: ptr(false)}))
			},
			want: []wantFail{{What: "SMTP", Words: "SMTP AUTH turned off for the whole tenant", Fix: "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"}},
		},
		{
			name: "imap off for the mailbox", account: demo.UserAccount, signIn: true,
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, Mailbox: user, IMAPEnabled: ptr(false)}))
			},
			want: []wantFail{{What: "IMAP", Words: "though POP3 and SMTP accepted the same token", Fix: "Set-CASMailbox -Identity alice@contoso.com -ImapEnabled $true"}},
		},
		{
			name: "app without exchange service principal", account: demo.AppAccount,
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, ClientID: env.Demo.ConfidentialID, ServicePrincipal: ptr(false)}))
			},
			want: appChain(),
		},
		{
			name: "app without fullaccess", account: demo.AppAccount,
			setup: func(t *testing.T, env *demo.Env) {
				must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, ClientID: env.Demo.ConfidentialID,
					Mailbox: user, FullAccess: ptr(false)}))
			},
			want: appChain(),
		},
	}
	// Every case gets its own emulator and store. They are all started and
	// signed in at once, up front: a device sign-in mostly waits for its
	// one-second poll interval, and t.Parallel would allow only GOMAXPROCS
	// of those waits at a time.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := t.TempDir()
	envs := make([]*demo.Env, len(tests))
	errs := make([]error, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		wg.Go(func() {
			env, err := demo.StartEnv(demo.EnvOptions{Dir: filepath.Join(base, strconv.Itoa(i))})
			if err == nil && tt.signIn {
				err = env.SignIn(ctx, tt.account)
			}
			envs[i], errs[i] = env, err
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, env := range envs {
			if env != nil {
				env.Close()
			}
		}
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := envs[i]
			if errs[i] != nil {
				t.Fatalf("start and sign in: %v", errs[i])
			}
			if tt.config != nil {
				rewriteAccount(t, env, tt.account, tt.config)
			}
			if tt.setup != nil {
				tt.setup(t, env)
			}
			opts := Options{ConfigFile: env.ConfigFile, Offline: tt.offline,
				Account: account.Options{StoreOptions: &tokens.Options{NoKeyring: true}}}
			if tt.skew != 0 {
				opts.Now = func() time.Time { return time.Now().Add(tt.skew) }
			}
			rep := Run(ctx, tt.account, opts)
			var text strings.Builder
			rep.WriteText(&text)
			t.Logf("doctor %s:\n%s", tt.account, text.String())

			var got []wantFail
			for _, f := range rep.Failures() {
				got = append(got, wantFail{What: f.What, AADSTS: f.AADSTS, Relogin: f.Relogin})
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b wantFail) bool {
				return a.What == b.What && a.AADSTS == b.AADSTS && a.Relogin == b.Relogin
			})); diff != "" {
				t.Fatalf("FAIL lines (-want +got):\n%s", diff)
			}
			for i, w := range tt.want {
				f := rep.Failures()[i]
				if !strings.Contains(f.Words, w.Words) {
					t.Errorf("%s: words %q do not say %q", f.What, f.Words, w.Words)
				}
				if !strings.Contains(f.Fix, w.Fix) {
					t.Errorf("%s: fix %q does not say %q", f.What, f.Fix, w.Fix)
				}
			}
			var warns []string
			for _, f := range rep.Findings {
				if f.Status == Warn {
					warns = append(warns, f.What)
				}
			}
			if diff := cmp.Diff(tt.warns, warns); diff != "" {
				t.Errorf("warn lines (-want +got):\n%s", diff)
			}
			if len(tt.want) == 0 && len(tt.warns) == 0 {
				for _, f := range rep.Findings {
					if f.Status != OK && !(tt.offline && f.Status == Skip) {
						t.Errorf("healthy account: %s %s: %s", f.Status, f.What, f.Words)
					}
				}
				if !tt.offline {
					for _, what := range []string{"tenant", "IMAP", "POP3", "SMTP", "Graph"} {
						if !hasFinding(rep, what) {
							t.Errorf("healthy account: no %s check", what)
						}
					}
				}
			}
			if tt.name == "not logged in" && !rep.OnlyRelogin() {
				t.Error("a missing login alone: OnlyRelogin false")
			}
			if tt.name == "revoked refresh token" {
				// The refused refresh is recorded: the next run (and
				// --offline) says so from the store alone.
				again := Run(ctx, tt.account, Options{ConfigFile: env.ConfigFile, Offline: true,
					Account: account.Options{StoreOptions: &tokens.Options{NoKeyring: true}}})
				var got []wantFail
				for _, f := range again.Failures() {
					got = append(got, wantFail{What: f.What, AADSTS: f.AADSTS, Relogin: f.Relogin})
					if !strings.Contains(f.Words, "it was revoked") {
						t.Errorf("second run: %q does not say why", f.Words)
					}
				}
				want := []wantFail{{What: "login", AADSTS: 50173, Relogin: true}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("second run, offline (-want +got):\n%s", diff)
				}
			}
			assertNoSecret(t, env, text.String())
		})
	}
}

// appChain is what Exchange's silent refusal of an app token gives: one
// FAIL per Exchange protocol, naming New-ServicePrincipal and
// Add-MailboxPermission; Graph still passes.
func appChain() []wantFail {
	var out []wantFail
	for _, p := range []string{"IMAP", "POP3", "SMTP"} {
		out = append(out, wantFail{What: p, Words: "Graph accepts this app", Fix: "New-ServicePrincipal -AppId 9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"})
	}
	for i := range out {
		out[i].Words = "Exchange rejected the app token for alice@contoso.com"
	}
	out[2].Fix = "Add-MailboxPermission -Identity alice@contoso.com"
	return out
}

func hasFinding(rep *Report, what string) bool {
	for _, f := range rep.Findings {
		if f.What == what {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rewriteAccount applies edit to the account's table of the env's config.
func rewriteAccount(t *testing.T, env *demo.Env, name string, edit func(*testing.T, *demo.Env, string) string) {
	t.Helper()
	data, err := os.ReadFile(env.ConfigFile)
	must(t, err)
	text := string(data)
	header := "[accounts." + name + "]\n"
	start := strings.Index(text, header)
	if start < 0 {
		t.Fatalf("no %s in the config", header)
	}
	body := start + len(header)
	end := strings.Index(text[body:], "\n[")
	if end < 0 {
		end = len(text) - body
	} else {
		end++
	}
	table := edit(t, env, text[body:body+end])
	must(t, os.WriteFile(env.ConfigFile, []byte(text[:body]+table+text[body+end:]), 0o600))
}

// setKey sets key in a table's text, replacing or adding the line.
func setKey(table, key, value string) string {
	line := key + " = \"" + value + "\"\n"
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` = .*\n`)
	if re.MatchString(table) {
		return re.ReplaceAllLiteralString(table, line)
	}
	return table + line
}

// useSecret replaces the certificate with a client secret read from a file.
func useSecret(t *testing.T, env *demo.Env, table, secret string) string {
	t.Helper()
	f := filepath.Join(env.Dir, "secret.txt")
	must(t, os.WriteFile(f, []byte(secret+"\n"), 0o600))
	table = regexp.MustCompile(`(?m)^certificate = .*\n`).ReplaceAllString(table, "")
	return setKey(table, "client_secret", "file:"+f)
}

// newCertificate writes a fresh self-signed certificate and key, which no
// app registration knows.
func newCertificate(t *testing.T, dir string) string {
	return writeCertificate(t, dir, time.Now().Add(365*24*time.Hour))
}

// writeCertificate writes a self-signed certificate valid until notAfter.
func writeCertificate(t *testing.T, dir string, notAfter time.Time) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not uploaded"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	p := filepath.Join(dir, "other.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})...)
	must(t, os.WriteFile(p, data, 0o600))
	return p
}

// assertNoSecret checks the output names neither the app's secret value
// nor any token the emulator issued.
func assertNoSecret(t *testing.T, env *demo.Env, out string) {
	t.Helper()
	if s := env.Demo.ConfidentialSecret; s != "" && strings.Contains(out, s) {
		t.Error("the output shows the client secret")
	}
	for _, marker := range []string{"eyJ", "DAQABAAEAAA"} {
		if strings.Contains(out, marker) {
			t.Errorf("the output shows something token-like (%q)", marker)
		}
	}
}

// pfxOf converts a PEM certificate and key file into a PKCS#12 file.
func pfxOf(t *testing.T, pemFile, password string) []byte {
	t.Helper()
	data, err := os.ReadFile(pemFile)
	must(t, err)
	var cert *x509.Certificate
	var key any
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			cert, err = x509.ParseCertificate(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		}
		must(t, err)
	}
	pfx, err := pkcs12.Modern.Encode(key, cert, nil, password)
	must(t, err)
	return pfx
}
