package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/cli"
	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/internal/testenv/oidcprovider"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/tokens"
)

const (
	alice = "alice@example.test" // the oidc-provider login, its sub, and the Dovecot mailbox
	bob   = "bob@example.test"
)

// chain is one oidc-provider, one Dovecot that introspects its tokens, and
// a mailoauth state directory holding the account alice signed in to.
type chain struct {
	idp   *oidcprovider.Server
	mail  *dovecot.Server
	dir   string // configs and scratch files
	state string // MAILOAUTH_STATE_DIR: the token store and its key file
	// Configs of the same account "alice" (one login, one store): every
	// server over implicit TLS with the mechanism the client picks, and
	// every server over STARTTLS with OAUTHBEARER asked for.
	cfgTLS, cfgSTARTTLS string
}

// accountConfig is a config of one account, alice, signing in to the
// provider with the device flow; its mailbox name comes from the ID token.
func (c *chain) accountConfig(t *testing.T, name, imap, pop3, smtp, mech string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[accounts.alice]\nprovider = \"oidc\"\nissuer = %s\nclient_id = %s\nflow = \"device\"\n"+
		"scopes = [\"openid\", \"offline_access\", \"mail\"]\nca_file = %s\nimap = %s\npop3 = %s\nsmtp = %s\n",
		strconv.Quote(c.idp.Issuer), strconv.Quote(oidcprovider.DeviceClient), strconv.Quote(c.mail.CAFile),
		strconv.Quote(imap), strconv.Quote(pop3), strconv.Quote(smtp))
	if mech != "" {
		fmt.Fprintf(&b, "sasl = %s\n", strconv.Quote(mech))
	}
	path := filepath.Join(c.dir, name+".toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startChain starts both servers, writes the configs and points
// MAILOAUTH_STATE_DIR at a fresh directory whose store key is a key file
// (the OS keyring is never touched).
func startChain(t *testing.T) *chain {
	t.Helper()
	idp := oidcprovider.Start(t) // skips unless MAILOAUTH_INTEGRATION=1
	dovecot.SkipUnlessEnabled(t)
	// Only the introspection passdb: Dovecot POSTs each token to
	// oidc-provider's RFC 7662 endpoint, authenticating as the
	// introspection client (HTTP Basic from the URL's userinfo), and
	// requires "active": true and "sub" equal to the SASL user.
	mail := dovecot.Start(t, dovecot.Options{
		IntrospectionURL:  idp.IntrospectionURL(),
		UsernameAttribute: "sub",
		NoLocalJWT:        true,
	})
	c := &chain{idp: idp, mail: mail, dir: t.TempDir(), state: t.TempDir()}
	key := make([]byte, tokens.KeySize)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	if err := os.WriteFile(filepath.Join(c.state, "tokens.db.key"), []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILOAUTH_STATE_DIR", c.state)
	t.Setenv("MAILOAUTH_CONFIG", "")
	t.Setenv("MAILOAUTH_NO_DAEMON", "1")
	c.cfgTLS = c.accountConfig(t, "tls", mail.URL("imaps"), mail.URL("pop3s"), mail.URL("smtps"), "")
	c.cfgSTARTTLS = c.accountConfig(t, "starttls", mail.URL("imap"), mail.URL("pop3"), mail.URL("smtp"), "oauthbearer")
	return c
}

// result is one in-process run of the CLI.
type result struct {
	code        int
	out, errOut string
}

// watchBuffer is the CLI's stderr: it keeps everything written and calls
// onWrite with all of it after each write (to catch the device code).
type watchBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	onWrite func(all string)
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	n, _ := w.b.Write(p)
	all := w.b.String()
	w.mu.Unlock()
	if w.onWrite != nil {
		w.onWrite(all)
	}
	return n, nil
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// run runs `mailoauth --config cfg ARGS…` in this process (cli.Run with
// buffers), stdin as given.
func run(t *testing.T, cfg, stdin string, onErr func(string), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	errOut := &watchBuffer{onWrite: onErr}
	g := &cli.Globals{In: strings.NewReader(stdin), Out: &out, ErrOut: errOut}
	code := cli.Run(ctx, g, append([]string{"--config", cfg}, args...))
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

var userCodeRE = regexp.MustCompile(`enter the code (\S+)`)

// login signs alice in with `mailoauth login alice`: the device flow,
// approved in oidc-provider's own device pages by the Browser helper, as
// a person would on their phone.
func (c *chain) login(t *testing.T) {
	t.Helper()
	var once sync.Once
	var wg sync.WaitGroup
	var approveErr error
	r := run(t, c.cfgTLS, "", func(all string) {
		m := userCodeRE.FindStringSubmatch(all)
		if m == nil {
			return
		}
		once.Do(func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, approveErr = oidcprovider.NewBrowser(alice).ApproveDevice(context.Background(), c.idp.Issuer, m[1])
			}()
		})
	}, "login", "alice")
	wg.Wait()
	if approveErr != nil {
		t.Fatalf("approve the device code: %v", approveErr)
	}
	if r.code != cli.ExitOK || !strings.Contains(r.errOut, "Logged in alice as "+alice) {
		t.Fatalf("login: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
	if _, err := os.Stat(filepath.Join(c.state, "tokens.db")); err != nil {
		t.Fatalf("the login did not write the store in MAILOAUTH_STATE_DIR: %v", err)
	}
}

// token prints alice's access token with `mailoauth token alice`.
func (c *chain) token(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, c.cfgTLS, "", nil, append([]string{"token", "alice"}, args...)...)
	if r.code != cli.ExitOK {
		t.Fatalf("token: exit %d\n%s", r.code, r.errOut)
	}
	return strings.TrimSpace(r.out)
}

// revoke revokes tok at oidc-provider (RFC 7009, as the public device
// client), leaving it in mailoauth's store: the client cannot know, so
// only the mail server's introspection finds out.
func (c *chain) revoke(t *testing.T, tok string) {
	t.Helper()
	resp, err := c.idp.HTTP.Get(c.idp.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Revocation string `json:"revocation_endpoint"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.Revocation == "" {
		t.Fatalf("no revocation endpoint in discovery: %v", err)
	}
	resp, err = c.idp.HTTP.PostForm(disc.Revocation, url.Values{"token": {tok}, "token_type_hint": {"access_token"}, "client_id": {oidcprovider.DeviceClient}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s %s", resp.Status, body)
	}
}

// expireLocally marks alice's stored access token expired (as if an
// hour had passed) without touching the server.
func (c *chain) expireLocally(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(c.state, "tokens.db")
	st, err := tokens.Open(ctx, "sqlite:"+path, &tokens.Options{NoKeyring: true, KeyFile: path + ".key", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kind := tokens.AccessKind("mail") // non-Microsoft accounts keep one access token for every protocol
	old, err := tokens.LoadToken(ctx, st, "alice", kind)
	if err != nil {
		t.Fatal(err)
	}
	old.Expiry = time.Now().Add(-time.Minute)
	if err := st.Put(ctx, nil, tokens.TokenRecord("alice", kind, old)); err != nil {
		t.Fatal(err)
	}
}

// introspect asks oidc-provider what it says about tok, as Dovecot does.
func (c *chain) introspect(t *testing.T, tok string) map[string]any {
	t.Helper()
	u, _ := url.Parse(c.idp.IntrospectionURL())
	pw, _ := u.User.Password()
	name := u.User.Username()
	u.User = nil
	req, _ := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(name, pw)
	resp, err := c.idp.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// relayedHas fails unless Dovecot relayed a message with this subject.
func relayedHas(t *testing.T, mail *dovecot.Server, subject string) {
	t.Helper()
	for _, m := range mail.Relayed(t) {
		if bytes.Contains(m, []byte("Subject: "+subject+"\n")) {
			return
		}
	}
	t.Errorf("Dovecot relayed no message with subject %q", subject)
}

func uniq(prefix string) string {
	return prefix + " " + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// TestIntegrationChain is the whole chain with nothing of ours on
// the server side: `mailoauth login` gets alice a token from oidc-provider
// with the device flow and stores it under MAILOAUTH_STATE_DIR; Dovecot
// checks that token by introspection at oidc-provider; `mailoauth check`
// and `mailoauth send` then pass over IMAP, POP3 and submission, with
// implicit TLS and STARTTLS, XOAUTH2 and OAUTHBEARER. Once the provider
// has revoked the token, every login fails with the typed error carrying
// Dovecot's JSON challenge status, and check prints it. In between, real
// mail clients log in with the tokens `mailoauth token` prints (the
// recipes of docs/mail-clients.md), and a due token is refreshed.
func TestIntegrationChain(t *testing.T) {
	c := startChain(t)
	c.mail.Deliver(t, bob, alice, []byte("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: fixture one\r\n"+
		"Message-ID: <fixture-1@example.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"))
	c.login(t)
	tok := c.token(t)

	// What Dovecot is told about the token: the mapping its passdb relies
	// on (active_attribute = active, username_attribute = sub).
	got := c.introspect(t, tok)
	if got["active"] != true || got["sub"] != alice || got["aud"] != oidcprovider.MailResource {
		t.Fatalf("introspection of the stored token = %v, want active, sub %s, aud %s", got, alice, oidcprovider.MailResource)
	}

	c.checkAndSend(t)
	bin := buildMailoauth(t)
	c.realClients(t, bin)
	tok = c.refresh(t, tok)
	c.revoked(t, tok, bin)
}

// checkAndSend runs `mailoauth check` and `mailoauth send` with both
// configs: every protocol, implicit TLS and STARTTLS, both mechanisms.
func (c *chain) checkAndSend(t *testing.T) {
	for _, tt := range []struct {
		name, cfg string
		want      []string
	}{
		{"tls", c.cfgTLS, []string{"IMAP imaps://", "POP3 pop3s://", "SMTP smtps://", "logged in with XOAUTH2 as " + alice}},
		{"starttls", c.cfgSTARTTLS, []string{"IMAP imap://", "POP3 pop3://", "SMTP smtp://", "ok   starttls", "logged in with OAUTHBEARER as " + alice}},
	} {
		t.Run("check/"+tt.name, func(t *testing.T) {
			r := run(t, tt.cfg, "", nil, "check", "alice", "--recent", "1")
			if r.code != cli.ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\ndovecot log:\n%s", r.code, r.out, r.errOut, c.mail.Log())
			}
			for _, w := range append(tt.want, "fixture one") {
				if !strings.Contains(r.out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.out)
				}
			}
			if n := strings.Count(r.out, "ok   authenticate"); n != 3 {
				t.Errorf("%d logins, want 3:\n%s", n, r.out)
			}
		})
		t.Run("send/"+tt.name, func(t *testing.T) {
			subject := uniq("chain " + tt.name)
			r := run(t, tt.cfg, "Sent through oidc-provider and Dovecot.\n", nil, "send", "alice", "--to", bob, "--subject", subject)
			if r.code != cli.ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\ndovecot log:\n%s", r.code, r.out, r.errOut, c.mail.Log())
			}
			relayedHas(t, c.mail, subject)
		})
	}
}

// refresh makes the stored token due and checks the next command gets
// and uses a new one; it returns the token now in the store.
func (c *chain) refresh(t *testing.T, tok string) string {
	// Time passes: the stored access token is due, so the next command
	// refreshes it at oidc-provider (which rotates the refresh token), and
	// Dovecot accepts the new one by introspection like the first.
	t.Run("refresh", func(t *testing.T) {
		c.expireLocally(t)
		r := run(t, c.cfgSTARTTLS, "", nil, "check", "alice", "--imap")
		if r.code != cli.ExitOK || !strings.Contains(r.out, "logged in with OAUTHBEARER as "+alice) {
			t.Fatalf("check after expiry: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		fresh := c.token(t)
		if fresh == tok {
			t.Fatal("the expired token was handed out again")
		}
		if got := c.introspect(t, fresh); got["active"] != true || got["sub"] != alice {
			t.Errorf("introspection of the refreshed token = %v", got)
		}
		tok = fresh
	})
	return tok
}

// revoked revokes tok at the provider and checks every client sees the
// refusal with Dovecot's challenge status.
func (c *chain) revoked(t *testing.T, tok, bin string) {
	py := pythonClients(t, c, bin)
	// Revoked at the provider, still in the store: the store hands it out,
	// Dovecot's introspection says inactive.
	c.revoke(t, tok)
	if got := c.introspect(t, tok); got["active"] != false {
		t.Fatalf("introspection after revocation = %v, want inactive", got)
	}
	if again := c.token(t); again != tok {
		t.Fatalf("token after revocation differs: the test expects the stored one to be handed out")
	}
	for _, tt := range []struct {
		name, cfg, status string
	}{
		// Dovecot's XOAUTH2 challenge is {"status":"401","schemes":"bearer","scope":"mail"},
		// its OAUTHBEARER one {"status":"invalid_token"}.
		{"tls", c.cfgTLS, "401"},
		{"starttls", c.cfgSTARTTLS, "invalid_token"},
	} {
		t.Run("check-revoked/"+tt.name, func(t *testing.T) {
			r := run(t, tt.cfg, "", nil, "check", "alice")
			if r.code != cli.ExitError {
				t.Errorf("exit %d, want %d\n%s", r.code, cli.ExitError, r.out)
			}
			if n := strings.Count(r.out, "FAIL authenticate"); n != 3 {
				t.Errorf("%d failed logins, want 3:\n%s", n, r.out)
			}
			if n := strings.Count(r.out, "oauth status: "+tt.status); n != 3 {
				t.Errorf("%d reports carry oauth status %s, want 3:\n%s", n, tt.status, r.out)
			}
			if strings.Contains(r.out+r.errOut, tok) {
				t.Errorf("check printed the token")
			}
		})
	}
	t.Run("send-revoked", func(t *testing.T) {
		r := run(t, c.cfgSTARTTLS, "never relayed\n", nil, "send", "alice", "--to", bob, "--subject", "revoked")
		if r.code == cli.ExitOK {
			t.Fatalf("send with a revoked token passed:\n%s%s", r.out, r.errOut)
		}
		if !strings.Contains(r.out+r.errOut, "invalid_token") {
			t.Errorf("send does not show the challenge status:\nstdout:\n%s\nstderr:\n%s", r.out, r.errOut)
		}
	})
	for _, tt := range []struct{ proto, sec, mech, status string }{
		{"imap", "tls", "xoauth2", "401"},
		{"imap", "starttls", "oauthbearer", "invalid_token"},
		{"pop3", "starttls", "xoauth2", "401"},
		{"pop3", "tls", "oauthbearer", "invalid_token"},
		{"smtp", "starttls", "xoauth2", "401"},
		{"smtp", "tls", "oauthbearer", "invalid_token"},
	} {
		t.Run("python-revoked/"+tt.proto+"/"+tt.sec+"/"+tt.mech, func(t *testing.T) {
			res, raw := py(t, tt.proto, tt.sec, tt.mech)
			if res.OK {
				t.Fatalf("python logged in with a revoked token: %s", raw)
			}
			if res.Challenge["status"] != tt.status {
				t.Errorf("challenge %v, want status %q (%s)", res.Challenge, tt.status, raw)
			}
		})
	}
	// Dovecot found out by introspection (auth_verbose logs the reason),
	// not by anything local: the chain has no local JWT passdb.
	if log := c.mail.Log(); !strings.Contains(log, "Introspection failed: Provided token is not valid") || strings.Contains(log, "Local validation") {
		t.Errorf("Dovecot's log does not show the introspection refusing the revoked token:\n%s", log)
	}
	// The library's typed error (check-revoked above covered every
	// protocol with both mechanisms through the CLI).
	for _, tt := range []struct{ url, mech, status string }{
		{"imaps", "XOAUTH2", "401"},
		{"pop3", "OAUTHBEARER", "invalid_token"},
		{"smtps", "XOAUTH2", "401"},
		{"smtp", "OAUTHBEARER", "invalid_token"},
	} {
		t.Run("typed-error/"+tt.url+"/"+tt.mech, func(t *testing.T) {
			srv, err := mailclient.ParseURL(c.mail.URL(tt.url))
			if err != nil {
				t.Fatal(err)
			}
			tlsCfg, err := mailclient.TLSConfig(c.mail.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = mailclient.Check(ctx, srv, mailclient.Options{User: alice, Token: tok, Mechanism: tt.mech, TLSConfig: tlsCfg})
			var ae *sasl.AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want a *sasl.AuthError", err, err)
			}
			if ae.Mechanism != tt.mech || ae.Status != tt.status {
				t.Errorf("AuthError mechanism %q status %q, want %q %q", ae.Mechanism, ae.Status, tt.mech, tt.status)
			}
			if ae.Err == nil {
				t.Errorf("AuthError lacks the server's final reply")
			}
		})
	}
	// logout forgets the account (and revokes its refresh token at the
	// provider); then check asks for a login instead of trying the server.
	t.Run("logout", func(t *testing.T) {
		r := run(t, c.cfgTLS, "", nil, "logout", "alice")
		if r.code != cli.ExitOK {
			t.Fatalf("logout: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		r = run(t, c.cfgTLS, "", nil, "check", "alice")
		if r.code != cli.ExitRelogin || !strings.Contains(r.out+r.errOut, "mailoauth login alice") {
			t.Errorf("check after logout: exit %d, want %d and the login command\nstdout:\n%s\nstderr:\n%s", r.code, cli.ExitRelogin, r.out, r.errOut)
		}
	})
}
