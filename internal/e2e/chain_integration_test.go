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
	"os/exec"
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

// TestIntegrationChainCheckSend is the whole chain with nothing of ours on
// the server side: `mailoauth login` gets alice a token from oidc-provider
// with the device flow and stores it under MAILOAUTH_STATE_DIR; Dovecot
// checks that token by introspection at oidc-provider; `mailoauth check`
// and `mailoauth send` then pass over IMAP, POP3 and submission, with
// implicit TLS and STARTTLS, XOAUTH2 and OAUTHBEARER. Once the provider
// has revoked the token, every login fails with the typed error carrying
// Dovecot's JSON challenge status, and check prints it.
func TestIntegrationChainCheckSend(t *testing.T) {
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

	bin := buildMailoauth(t)
	py := pythonClients(t, c, bin)
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		for _, sec := range []string{"tls", "starttls"} {
			for _, mech := range []string{"xoauth2", "oauthbearer"} {
				t.Run("python/"+proto+"/"+sec+"/"+mech, func(t *testing.T) {
					var extra []string
					if proto == "smtp" {
						extra = []string{bob, uniq("python " + sec + " " + mech)}
					}
					var res pyResult
					var raw string
					loggedIn(t, c.mail, map[string]string{"imap": "imap", "pop3": "pop3", "smtp": "submission"}[proto], mech, func() {
						res, raw = py(t, proto, sec, mech, extra...)
					})
					if !res.OK {
						t.Fatalf("python %s login refused: %s\ndovecot log:\n%s", proto, raw, c.mail.Log())
					}
					want := map[string]string{"imap": "INBOX has 1 messages", "pop3": "mailbox has 1 messages", "smtp": "sent to " + bob}[proto]
					if res.Detail != want {
						t.Errorf("python says %q, want %q", res.Detail, want)
					}
					if proto == "smtp" {
						relayedHas(t, c.mail, extra[1])
					}
				})
			}
		}
	}
	// curl reading its options from stdin (-K -), so the token never
	// appears in a process's argv.
	t.Run("curl/config-stdin", func(t *testing.T) {
		needTool(t, "curl")
		out := shell(t, c.cfgTLS, bin, fmt.Sprintf(`"$MAILOAUTH" token alice | sed 's/^/oauth2-bearer = /' | curl -sS --cacert %s -K - '%s/INBOX?ALL' -u '%s:'`,
			c.mail.CAFile, c.mail.URL("imaps"), alice))
		if !strings.Contains(out, "* SEARCH 1") {
			t.Errorf("curl output %q, want the SEARCH answer", out)
		}
	})

	// mpop: passwordeval runs `mailoauth token`, auth xoauth2 and
	// oauthbearer, STARTTLS and TLS; it downloads the fixture and keeps it.
	for _, tt := range []struct{ mech, url string }{{"xoauth2", "pop3"}, {"oauthbearer", "pop3s"}} {
		t.Run("mpop/"+tt.mech+"/"+tt.url, func(t *testing.T) {
			needTool(t, "mpop")
			dir := t.TempDir()
			rc := filepath.Join(dir, "mpoprc")
			starttls := map[string]string{"pop3": "on", "pop3s": "off"}[tt.url]
			writeFile(t, rc, fmt.Sprintf(`defaults
tls on
tls_starttls %s
tls_trust_file %s
keep on
uidls_file %s
delivery mbox %s

account alice
host 127.0.0.1
port %s
auth %s
user %s
passwordeval "%s --config %s token alice --resource pop"
`, starttls, c.mail.CAFile, filepath.Join(dir, "uidls"), filepath.Join(dir, "mbox"), port(c.mail.URL(tt.url)), tt.mech, alice, bin, c.cfgTLS))
			loggedIn(t, c.mail, "pop3", tt.mech, func() { shell(t, c.cfgTLS, bin, fmt.Sprintf(`HOME=%s mpop -C %s alice`, dir, rc)) })
			if mbox, _ := os.ReadFile(filepath.Join(dir, "mbox")); !bytes.Contains(mbox, []byte("Subject: fixture one")) {
				t.Errorf("mpop delivered:\n%s", mbox)
			}
		})
	}
	// neomutt sends in batch mode (no terminal needed) over submission,
	// fetching the token with smtp_oauth_refresh_command.
	for _, tt := range []struct{ mech, url string }{{"xoauth2", "smtp"}, {"oauthbearer", "smtps"}} {
		t.Run("neomutt/"+tt.mech+"/"+tt.url, func(t *testing.T) {
			needTool(t, "neomutt")
			dir := t.TempDir()
			rc := filepath.Join(dir, "neomuttrc")
			writeFile(t, rc, fmt.Sprintf(`set from = "%s"
set use_from = yes
set smtp_url = "%s://%s@%s/"
set smtp_authenticators = "%s"
set smtp_oauth_refresh_command = "%s --config %s token alice --resource smtp"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_ca_certificates_file = "%s"
set record = ""
set header_cache = ""
set message_cachedir = ""
`, alice, tt.url, alice, strings.TrimPrefix(c.mail.URL(tt.url), tt.url+"://"), tt.mech, bin, c.cfgTLS, c.mail.CAFile))
			subject := uniq("neomutt " + tt.mech)
			loggedIn(t, c.mail, "submission", tt.mech, func() {
				shell(t, c.cfgTLS, bin, fmt.Sprintf(`echo 'Sent by neomutt.' | HOME=%s neomutt -n -F %s -s '%s' -- %s`, dir, rc, subject, bob))
			})
			relayedHas(t, c.mail, subject)
		})
	}

	// neomutt reading INBOX over IMAP with imap_oauth_refresh_command needs
	// a terminal: script(1) gives it a pty, and it quits at once.
	for _, tt := range []struct{ mech, url string }{{"xoauth2", "imaps"}, {"oauthbearer", "imap"}} {
		t.Run("neomutt-imap/"+tt.mech+"/"+tt.url, func(t *testing.T) {
			needTool(t, "neomutt")
			needTool(t, "script")
			dir := t.TempDir()
			rc := filepath.Join(dir, "neomuttrc")
			writeFile(t, rc, fmt.Sprintf(`set imap_user = "%s"
set imap_authenticators = "%s"
set imap_oauth_refresh_command = "%s --config %s token alice"
set folder = "%s/"
set spoolfile = "+INBOX"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_ca_certificates_file = "%s"
set record = ""
set header_cache = ""
set message_cachedir = ""
`, alice, tt.mech, bin, c.cfgTLS, c.mail.URL(tt.url), c.mail.CAFile))
			loggedIn(t, c.mail, "imap", tt.mech, func() {
				shell(t, c.cfgTLS, bin, fmt.Sprintf(`HOME=%s TERM=xterm timeout 30 script -qec "neomutt -n -F %s -e 'push <quit>'" /dev/null > %s`,
					dir, rc, filepath.Join(dir, "screen")))
			})
			// The index's status line counts INBOX's one message.
			if screen, _ := os.ReadFile(filepath.Join(dir, "screen")); !bytes.Contains(screen, []byte("Msgs:1")) {
				t.Errorf("neomutt's screen lacks the INBOX count:\n%q", screen)
			}
		})
	}

	// mbsync: PassCmd runs `mailoauth token`; XOAUTH2 comes from Cyrus
	// SASL's kdexoauth2 plugin (there is no OAUTHBEARER plugin in Debian).
	// isync 1.4 matches certificates by DNS name only, and "localhost" may
	// resolve to ::1 first, so TLS to 127.0.0.1 goes through a Tunnel of
	// openssl s_client verifying the server's IP address instead of
	// mbsync's own Host/SSLType (the recipe's part under test is PassCmd
	// and AuthMechs XOAUTH2).
	t.Run("mbsync/xoauth2", func(t *testing.T) {
		needTool(t, "mbsync")
		needTool(t, "openssl")
		dir := t.TempDir()
		rc := filepath.Join(dir, "mbsyncrc")
		maildir := filepath.Join(dir, "mail")
		if err := os.Mkdir(maildir, 0o700); err != nil { // mbsync creates INBOX, not the store's root
			t.Fatal(err)
		}
		writeFile(t, rc, fmt.Sprintf(`IMAPAccount alice
Tunnel "openssl s_client -quiet -verify_quiet -verify_return_error -CAfile %s -verify_ip 127.0.0.1 -connect 127.0.0.1:%s"
User %s
PassCmd "%s --config %s token alice"
AuthMechs XOAUTH2
SSLType None

IMAPStore alice-remote
Account alice

MaildirStore alice-local
Path %s/
Inbox %s/INBOX

Channel alice
Far :alice-remote:
Near :alice-local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
`, c.mail.CAFile, port(c.mail.URL("imaps")), alice, bin, c.cfgTLS, maildir, maildir))
		loggedIn(t, c.mail, "imap", "xoauth2", func() { shell(t, c.cfgTLS, bin, fmt.Sprintf(`HOME=%s mbsync -c %s alice`, dir, rc)) })
		files, _ := filepath.Glob(filepath.Join(maildir, "INBOX", "*", "*"))
		found := false
		for _, f := range files {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("Subject: fixture one")) {
				found = true
			}
		}
		if !found {
			t.Errorf("mbsync did not sync the fixture into %s (%d files)", maildir, len(files))
		}
	})

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
}

// buildMailoauth builds the CLI for the real clients to run.
func buildMailoauth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailoauth")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mailoauth/mailoauth/cmd/mailoauth")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// clientEnv is the environment the real clients run in: $MAILOAUTH is the
// binary, MAILOAUTH_CONFIG the config (MAILOAUTH_STATE_DIR is inherited).
func clientEnv(cfg, bin string) []string {
	return append(os.Environ(), "MAILOAUTH="+bin, "MAILOAUTH_CONFIG="+cfg)
}

// shell runs a recipe line with sh -c and returns its stdout.
func shell(t *testing.T, cfg, bin, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = clientEnv(cfg, bin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, out.String(), errOut.String())
	}
	return out.String()
}

// pyResult is what testdata/pyclients.py prints.
type pyResult struct {
	OK        bool           `json:"ok"`
	Detail    string         `json:"detail"`
	Reply     string         `json:"reply"`
	Challenge map[string]any `json:"challenge"`
}

// pythonClients returns a runner of testdata/pyclients.py: Python's
// imaplib, poplib or smtplib logging in to c's Dovecot with the SASL
// initial response `mailoauth token alice --sasl MECH` prints.
func pythonClients(t *testing.T, c *chain, bin string) func(t *testing.T, proto, sec, mech string, extra ...string) (pyResult, string) {
	t.Helper()
	// Debian's interpreter first: a version manager's shim (pyenv) costs
	// a second per start.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Fatalf("python3 missing: run .ci/setup.d/46-python-clients.sh as root")
		}
	}
	script, err := filepath.Abs(filepath.Join("testdata", "pyclients.py"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{"imap/tls": c.mail.IMAPS, "imap/starttls": c.mail.IMAP, "pop3/tls": c.mail.POP3S,
		"pop3/starttls": c.mail.POP3, "smtp/tls": c.mail.Submissions, "smtp/starttls": c.mail.Submission}
	return func(t *testing.T, proto, sec, mech string, extra ...string) (pyResult, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := append([]string{script, proto, sec, mech, c.mail.Host, strconv.Itoa(ports[proto+"/"+sec]), c.mail.CAFile, "alice"}, extra...)
		cmd := exec.CommandContext(ctx, python, args...)
		cmd.Env = clientEnv(c.cfgTLS, bin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var res pyResult
		if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
			t.Fatalf("pyclients.py %s: %v, %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args[1:], " "), err, jerr, out.String(), errOut.String())
		}
		var ee *exec.ExitError
		if res.OK != (err == nil) || (err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1)) {
			t.Fatalf("pyclients.py exit %v with ok=%v\nstderr:\n%s", err, res.OK, errOut.String())
		}
		return res, strings.TrimSpace(out.String())
	}
}

// needTool fails t when a client is not installed (CI must not pass by
// skipping).
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s missing: run .ci/setup.d/45-mail-clients.sh and 46-python-clients.sh as root", name)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// port is the port of a server URL.
func port(u string) string { return u[strings.LastIndex(u, ":")+1:] }

// loggedIn fails t unless Dovecot logged a new login of alice with mech
// on service (imap, pop3, submission) while do ran: the client really
// used the mechanism it was told to.
func loggedIn(t *testing.T, mail *dovecot.Server, service, mech string, do func()) {
	t.Helper()
	line := service + "-login: Info: Login: user=<" + alice + ">, method=" + strings.ToUpper(mech) + ","
	before := strings.Count(mail.Log(), line)
	do()
	if t.Failed() {
		return
	}
	if after := strings.Count(mail.Log(), line); after <= before {
		t.Errorf("Dovecot logged no new %q", line)
	}
}
