// Package account joins a config account to its tokens: it builds the OAuth
// client of an account (provider, tenant, cloud, credentials, scopes), runs
// its login flow, and hands out access tokens per resource through the
// refresh engine, with one shared token store for all accounts of a config.
//
// It is the one place the CLI commands (login, token, status, logout,
// consent, check, send, demo) and the daemon get tokens from, so they all
// agree on which token serves which protocol:
//
//	m, err := account.Open(ctx, cfg, account.Options{})
//	defer m.Close()
//	a, err := m.Account("work")
//	tok, err := a.Token(ctx, "imap") // errors.Is(err, tokens.ErrReloginRequired) → run `mailoauth login work`
//
// Microsoft issues one resource per token: IMAP, POP, SMTP and EWS share one
// Exchange access token (the scopes of one login cover them all), Graph gets
// its own, both refreshed from the account's one refresh token with the
// resource's scopes. Other providers have one access token for everything.
package account

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
	"github.com/mailoauth/mailoauth/tokens"
)

// Resource names a caller asks a token for. Exchange protocols map onto one
// Exchange token on Microsoft (see Account.Token).
const (
	ResourceIMAP  = "imap"
	ResourcePOP   = "pop"
	ResourceSMTP  = "smtp"
	ResourceEWS   = "ews"
	ResourceGraph = "graph"
)

// Cache keys: the tokens.Store access kinds this package writes. One per
// token-endpoint resource, not per protocol, so IMAP and SMTP share a token.
const (
	cacheExchange = "exchange"
	cacheGraph    = "graph"
	cacheMail     = "mail" // non-Microsoft providers: one token for everything
)

// Options configure Open. The zero value opens the config's store with its
// default key source.
type Options struct {
	// Logger receives debug and warning lines (never a token); nil means
	// slog.Default().
	Logger *slog.Logger
	// HTTPClient, when set, replaces every account's own client (tests,
	// the emulator's RedirectingHTTPClient). nil: each account gets one
	// trusting the system roots plus its ca_file.
	HTTPClient *http.Client
	// Store, when set, is used instead of opening cfg.Store; Close then
	// leaves it open (its owner closes it).
	Store tokens.Store
	// StoreOptions are passed to tokens.Open (key, key file, keyring). The
	// config's store_passphrase fills Passphrase when this leaves it nil.
	StoreOptions *tokens.Options
	// Now is the clock of the OAuth clients (assertion lifetimes, device
	// code expiry); nil means time.Now.
	Now func() time.Time
	// Source tunes the refresh engine (margins, retries, Notify, Holder);
	// its Store, Refresher, Account, Resource and Scopes are set here.
	Source tokens.Config
}

// Manager opens the accounts of one config with one shared token store.
// It is safe for concurrent use.
type Manager struct {
	cfg       *config.Config
	opts      Options
	store     tokens.Store
	ownsStore bool
	log       *slog.Logger

	mu       sync.Mutex
	accounts map[string]*Account
}

// Open opens the token store of cfg. No network request is made: providers
// found by discovery are fetched when an account first needs them.
func Open(ctx context.Context, cfg *config.Config, opts Options) (*Manager, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{cfg: cfg, opts: opts, log: log, accounts: map[string]*Account{}}
	if opts.Store != nil {
		m.store = opts.Store
		return m, nil
	}
	so := tokens.Options{Logger: log}
	if opts.StoreOptions != nil {
		so = *opts.StoreOptions
		if so.Logger == nil {
			so.Logger = log
		}
	}
	if so.Passphrase == nil && so.Key == nil && cfg.StorePassphrase.IsSet() {
		pp := cfg.StorePassphrase
		so.Passphrase = func() ([]byte, error) {
			s, err := pp.Resolve(ctx)
			return []byte(s), err
		}
	}
	if cfg.Store == "" {
		return nil, errors.New("the config names no token store")
	}
	st, err := tokens.Open(ctx, cfg.Store, &so)
	if err != nil {
		return nil, fmt.Errorf("open token store: %w", err)
	}
	m.store, m.ownsStore = st, true
	return m, nil
}

// Close closes the store (unless Options.Store supplied it).
func (m *Manager) Close() error {
	if m.ownsStore {
		return m.store.Close()
	}
	return nil
}

// Store is the shared token store.
func (m *Manager) Store() tokens.Store { return m.store }

// Config is the config the Manager was opened with.
func (m *Manager) Config() *config.Config { return m.cfg }

// Account returns the account called name; the same *Account each time, so
// its cached access tokens and refresh single-flight are shared by callers.
func (m *Manager) Account(name string) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.accounts[name]; ok {
		return a, nil
	}
	ac, err := m.cfg.Account(name)
	if err != nil {
		return nil, err
	}
	a := &Account{m: m, cfg: ac, sources: map[string]*tokens.Source{}}
	m.accounts[name] = a
	return a, nil
}

// Account is one configured account with its tokens.
type Account struct {
	m   *Manager
	cfg *config.Account

	// The HTTP client is built on first use: loading the system roots
	// costs ~10 ms, which the cached path of `mailoauth token` must not pay.
	hcOnce sync.Once
	hc     *http.Client
	hcErr  error

	pmu  sync.Mutex
	prov *provider.Provider // built on first use (discovery needs the network)

	mu      sync.Mutex
	client  *oauth.Client // built on first use (secrets are resolved then)
	sources map[string]*tokens.Source
	email   string // learned from the stored ID token when the config has none
}

// Name is the account's name in the config.
func (a *Account) Name() string { return a.cfg.Name }

// Config is the account's config table.
func (a *Account) Config() *config.Account { return a.cfg }

// AppOnly reports whether the account uses client credentials: its tokens
// are the application's, so Graph must address /users/{email}, never /me,
// and no refresh token exists.
func (a *Account) AppOnly() bool { return a.cfg.Flow == config.FlowClientCredentials }

// HTTPClient trusts the system roots plus the account's ca_file; it is used
// for the identity endpoints and Graph. If the ca_file cannot be read, the
// client fails every request with that error.
func (a *Account) HTTPClient() *http.Client {
	hc, err := a.httpClient()
	if err != nil {
		return &http.Client{Transport: errTransport{err}}
	}
	return hc
}

func (a *Account) httpClient() (*http.Client, error) {
	a.hcOnce.Do(func() {
		if a.hc = a.m.opts.HTTPClient; a.hc == nil {
			a.hc, a.hcErr = httpClient(a.cfg.CAFile)
		}
	})
	return a.hc, a.hcErr
}

// errTransport fails every request with err.
type errTransport struct{ err error }

func (t errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, t.err }

// Email is the mailbox used as SASL user and Graph user: the config's email,
// else the one the identity provider named at login (preferred_username or
// email of the ID token), else "".
func (a *Account) Email() string {
	if a.cfg.Email != "" {
		return a.cfg.Email
	}
	return a.SignedInAs()
}

// SignedInAs is the address the identity provider named at login
// (preferred_username or email of the stored ID token), or "" when there is
// none (app-only accounts, logins without an ID token). It differs from
// Email when the config's email names another mailbox, such as a shared one
// the user may open; Graph then needs /users/{email} instead of /me.
func (a *Account) SignedInAs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.email == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if tok, err := tokens.LoadToken(ctx, a.m.store, a.cfg.Name, tokens.KindRefresh); err == nil {
			a.email = emailFromIDToken(tok.IDToken)
		}
	}
	return a.email
}

// httpClient builds a client trusting the system roots and caFile (PEM).
// Timeouts bound every identity request so a dead server cannot hang a mail
// client waiting for `mailoauth token`.
func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// Client returns the account's OAuth client, building it on first use: the
// provider (Microsoft from tenant, cloud and authority; Google; or OIDC
// discovery of the issuer, a network request) and the client credential
// (secret or certificate, resolved from their references now).
func (a *Account) Client(ctx context.Context) (*oauth.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil {
		return a.client, nil
	}
	c, err := a.buildClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", a.cfg.Name, err)
	}
	a.client = c
	return c, nil
}

// Provider returns the account's authorization server: Microsoft (from
// tenant, cloud and authority) and Google need no request; an OIDC issuer is
// discovered on first use.
func (a *Account) Provider(ctx context.Context) (*provider.Provider, error) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if a.prov != nil {
		return a.prov, nil
	}
	ac := a.cfg
	var (
		p   *provider.Provider
		err error
	)
	switch ac.Provider {
	case config.Microsoft:
		p, err = provider.Microsoft(provider.MicrosoftOptions{Tenant: ac.Tenant, Cloud: ac.Cloud, Authority: ac.Authority})
	case config.Google:
		p = provider.Google()
	case config.OIDC:
		var hc *http.Client
		if hc, err = a.httpClient(); err == nil {
			p, err = provider.Discover(ctx, hc, ac.Issuer)
		}
	default:
		err = fmt.Errorf("unknown provider %q", ac.Provider)
	}
	if err != nil {
		return nil, err
	}
	a.prov = p
	return p, nil
}

func (a *Account) buildClient(ctx context.Context) (*oauth.Client, error) {
	ac := a.cfg
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	p, err := a.Provider(ctx)
	if err != nil {
		return nil, err
	}
	c := &oauth.Client{HTTP: hc, Provider: p, ClientID: ac.ClientID, Now: a.m.opts.Now, Logger: a.m.log}
	switch {
	case ac.Certificate != "":
		data, err := os.ReadFile(ac.Certificate)
		if err != nil {
			return nil, fmt.Errorf("read certificate: %w", err)
		}
		var pw string
		if ac.CertificatePassword.IsSet() {
			if pw, err = ac.CertificatePassword.Resolve(ctx); err != nil {
				return nil, err
			}
		}
		cert, err := oauth.LoadCertificate(data, pw)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", ac.Certificate, err)
		}
		if ac.AssertionAlg != "" {
			cert.Alg = jose.SignatureAlgorithm(ac.AssertionAlg)
			if err := cert.CheckAlg(); err != nil {
				return nil, fmt.Errorf("certificate %s: %w", ac.Certificate, err)
			}
		}
		cert.SendX5C = ac.X5C
		c.Auth = cert
	case ac.ClientSecret.IsSet():
		s, err := ac.ClientSecret.Resolve(ctx)
		if err != nil {
			return nil, err
		}
		style, err := oauth.ParseSecretStyle(ac.AuthMethod)
		if err != nil {
			return nil, err
		}
		c.Auth = oauth.ClientSecret{Secret: s, Style: style}
	}
	return c, nil
}

// scopes expands the account's scope list for its flow.
func (a *Account) scopes(p *provider.Provider) ([]string, error) {
	d := provider.Delegated
	if a.AppOnly() {
		d = provider.AppOnly
	}
	return p.ExpandScopes(a.cfg.Scopes, d)
}

// cacheKey maps a resource a caller names to the access token that serves
// it, or an error saying why the account has none.
func (a *Account) cacheKey(resource string) (string, error) {
	switch strings.ToLower(resource) {
	case "", ResourceIMAP, "pop3", ResourcePOP, ResourceSMTP, ResourceEWS, cacheExchange:
		if a.cfg.Provider == config.Microsoft {
			return cacheExchange, nil
		}
		return cacheMail, nil
	case ResourceGraph:
		if a.cfg.Provider != config.Microsoft {
			return "", fmt.Errorf("account %s: Microsoft Graph exists only for Microsoft accounts", a.cfg.Name)
		}
		return cacheGraph, nil
	}
	return "", fmt.Errorf("unknown resource %q: use imap, pop, smtp, ews or graph", resource)
}

// keyOf names the cache key of a Microsoft resource URL.
func keyOf(p *provider.Provider, resource string) string {
	if p.Kind != provider.KindMicrosoft {
		return cacheMail
	}
	switch resource {
	case p.Cloud.GraphURL:
		return cacheGraph
	case p.Cloud.ExchangeResource, p.Cloud.ExchangeAppResource:
		return cacheExchange
	}
	return resource
}

// resourceScopes returns the scopes to send for the token of key: one
// resource's scopes plus the OIDC ones (Microsoft issues one resource per
// token request).
func (a *Account) resourceScopes(p *provider.Provider, key string) ([]string, error) {
	all, err := a.scopes(p)
	if err != nil {
		return nil, err
	}
	if a.AppOnly() && p.Kind == provider.KindMicrosoft {
		// App-only tokens: exactly "<resource>/.default". Graph is allowed
		// even when the config lists only mail presets, so check --graph
		// works with the same app registration.
		preset := "imap"
		if key == cacheGraph {
			preset = "graph-mail"
		}
		for _, g := range p.SplitByResource(all) {
			if keyOf(p, g.Resource) == key {
				return dropOIDC(g.Scopes), nil
			}
		}
		return p.ExpandScopes([]string{preset}, provider.AppOnly)
	}
	// The login's OIDC additions too, so a refreshed ID token still names
	// the mailbox (servers send claims only for the scopes asked).
	if !a.AppOnly() {
		all = a.loginScopes(p, all)
	}
	for _, g := range p.SplitByResource(all) {
		if keyOf(p, g.Resource) == key {
			return g.Scopes, nil
		}
	}
	what := map[string]string{cacheExchange: "imap, pop, smtp or ews", cacheGraph: "graph-mail"}[key]
	return nil, fmt.Errorf("account %s: its scopes include none for %s; add %s to scopes and log in again", a.cfg.Name, key, what)
}

func dropOIDC(ss []string) []string {
	return slices.DeleteFunc(slices.Clone(ss), provider.IsOIDCScope)
}

// ScopesCover reports, without any request, whether the account's
// configured scopes ask for what resource needs: nil when they do, else an
// error naming the scope preset to add. `mailoauth check` uses it to skip
// the protocols an account was never meant for instead of failing them.
// Microsoft user accounts are checked per protocol (IMAP needs
// IMAP.AccessAsUser.All, POP3 POP.AccessAsUser.All, SMTP SMTP.Send, EWS
// EWS.AccessAsUser.All, an Exchange "/.default" covers them all; Graph needs
// any Graph scope), since one Exchange token without the protocol's scope
// is refused by that server only. App-only tokens (always the resource's
// "/.default"), Google (one scope for all mail) and other servers (scopes
// only they understand) are always covered.
func (a *Account) ScopesCover(ctx context.Context, resource string) error {
	key, err := a.cacheKey(resource)
	if err != nil {
		return err
	}
	if a.cfg.Provider != config.Microsoft || a.AppOnly() {
		return nil
	}
	p, err := a.Provider(ctx)
	if err != nil {
		return err
	}
	scopes, err := a.resourceScopes(p, key)
	if err != nil || key != cacheExchange {
		return err
	}
	need := map[string]struct{ scope, preset string }{
		ResourceIMAP: {"IMAP.AccessAsUser.All", "imap"},
		ResourcePOP:  {"POP.AccessAsUser.All", "pop"}, "pop3": {"POP.AccessAsUser.All", "pop"},
		ResourceSMTP: {"SMTP.Send", "smtp"},
		ResourceEWS:  {"EWS.AccessAsUser.All", "ews"},
	}[strings.ToLower(resource)]
	if need.scope == "" {
		return nil // the Exchange token as such: any Exchange scope
	}
	for _, s := range scopes {
		name := s[strings.LastIndex(s, "/")+1:]
		if strings.EqualFold(name, need.scope) || name == ".default" {
			return nil
		}
	}
	return fmt.Errorf("account %s: its scopes include none for %s (%s); add %s to scopes and log in again", a.cfg.Name, resource, need.scope, need.preset)
}

// Token returns a valid access token for a resource: "imap", "pop", "smtp",
// "ews" or "graph". On Microsoft the Exchange protocols share one Exchange
// token and Graph has its own, both refreshed from the one refresh token
// (tokens.Source: single flight across goroutines and processes, the
// rotated refresh token saved first). Client credentials accounts get a
// fresh app token for the resource's "/.default", cached in the store.
//
// An account that needs an interactive login gives an error matching
// tokens.ErrReloginRequired (a *tokens.ReloginError naming the command).
func (a *Account) Token(ctx context.Context, resource string) (*oauth.Token, error) {
	key, err := a.cacheKey(resource)
	if err != nil {
		return nil, err
	}
	if a.cfg.Provider != config.OIDC {
		// A resource the account's scopes do not cover is a config
		// mistake: say so now rather than record it as a failed refresh
		// (which would mark the whole account unhealthy). These providers
		// are built without a request; an OIDC one would need discovery.
		p, err := a.Provider(ctx)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.cfg.Name, err)
		}
		if _, err := a.resourceScopes(p, key); err != nil {
			return nil, err
		}
	}
	src, err := a.source(key)
	if err != nil {
		return nil, err
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// source returns the refresh engine of one cache key. Building it needs no
// network: the refresher builds the OAuth client only when a refresh is
// due, so the cached path of `mailoauth token` stays local.
func (a *Account) source(key string) (*tokens.Source, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.sources[key]; ok {
		return s, nil
	}
	cfg := a.m.opts.Source
	cfg.Store = a.m.store
	cfg.Account = a.cfg.Name
	cfg.Resource = key
	cfg.NoRefreshToken = a.AppOnly()
	cfg.Scopes = nil // decided per refresh by the refresher
	if cfg.Logger == nil {
		cfg.Logger = a.m.log
	}
	cfg.Refresher = tokens.RefresherFunc(func(ctx context.Context, rt string, _ []string) (*oauth.Token, error) {
		c, err := a.Client(ctx)
		if err != nil {
			return nil, err
		}
		scopes, err := a.resourceScopes(c.Provider, key)
		if err != nil {
			return nil, err
		}
		if a.AppOnly() {
			return c.ClientCredentials(ctx, scopes)
		}
		return c.Refresh(ctx, rt, scopes)
	})
	s, err := tokens.NewSource(cfg)
	if err != nil {
		return nil, err
	}
	a.sources[key] = s
	return s, nil
}

// LoginUI is how a login reaches the user. Every field is optional.
type LoginUI struct {
	// Device shows a device sign-in's URL and code (and starts a
	// countdown); called once the code exists.
	Device func(oauth.DevicePrompt)
	// Interaction drives the browser of an authorization code sign-in:
	// printing the URL, --no-browser, the paste fallback, the timeout.
	Interaction oauth.Interaction
	// Warn tells the user about a risky choice (the password grant).
	Warn func(msg string)
	// Password asks the user for their password, for the password grant
	// of an account whose config names no password reference. Nil means
	// nobody can be asked (no terminal).
	Password func() (string, error)
}

// LoginResult is what a successful login stored, without any token.
type LoginResult struct {
	Account  string    `json:"account"`
	Flow     string    `json:"flow"`
	Email    string    `json:"email,omitempty"`
	Resource string    `json:"resource"`
	Expiry   time.Time `json:"expiry,omitzero"`
	Scopes   []string  `json:"scopes,omitempty"`
	// Refresh says whether a refresh token was granted (offline_access).
	Refresh bool `json:"refresh"`
}

// Login runs the account's flow (device, authcode, client_credentials, or
// password when the config asks for it) and stores the result, replacing
// every token the account had: access tokens of a previous user must not
// outlive the login that replaced them.
func (a *Account) Login(ctx context.Context, ui LoginUI) (*LoginResult, error) {
	c, err := a.Client(ctx)
	if err != nil {
		return nil, err
	}
	all, err := a.scopes(c.Provider)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", a.cfg.Name, err)
	}
	var (
		tok *oauth.Token
		key string
	)
	if a.AppOnly() {
		key = cacheMail
		if c.Provider.Kind == provider.KindMicrosoft {
			key = cacheExchange
			if len(all) > 0 {
				key = keyOf(c.Provider, c.Provider.SplitByResource(all)[0].Resource)
			}
		}
		scopes, err := a.resourceScopes(c.Provider, key)
		if err != nil {
			return nil, err
		}
		tok, err = c.ClientCredentials(ctx, scopes)
		if err != nil {
			return nil, err
		}
	} else {
		scopes := a.loginScopes(c.Provider, all)
		key = keyOf(c.Provider, c.Provider.SplitByResource(scopes)[0].Resource)
		switch a.cfg.Flow {
		case config.FlowDevice:
			prompt := ui.Device
			if prompt == nil {
				prompt = func(oauth.DevicePrompt) {}
			}
			tok, err = c.DeviceFlow(ctx, scopes, prompt)
		case config.FlowAuthCode:
			o := oauth.LoginOptions{RedirectURI: a.cfg.RedirectURI, Scopes: scopes, Interaction: ui.Interaction}
			o.Auth.LoginHint = a.cfg.Email
			tok, err = c.Login(ctx, o)
		case config.FlowPassword:
			if ui.Warn != nil {
				ui.Warn("the password grant (ROPC) fails for accounts with MFA or Conditional Access and hands mailoauth your password; prefer flow = \"device\" or \"authcode\"")
			}
			var pw string
			switch {
			case a.cfg.Password.IsSet():
				pw, err = a.cfg.Password.Resolve(ctx)
			case ui.Password != nil:
				pw, err = ui.Password()
			default:
				err = fmt.Errorf("account %s uses the password flow but its config has no password: set password = \"cmd:…\" (or env:, file:, keyring:), or run mailoauth login on a terminal to be asked", a.cfg.Name)
			}
			if err == nil {
				tok, err = c.Password(ctx, a.cfg.Email, pw, scopes)
			}
		default:
			err = fmt.Errorf("unknown flow %q", a.cfg.Flow)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := a.replaceTokens(ctx, key, tok); err != nil {
		return nil, err
	}
	res := &LoginResult{Account: a.cfg.Name, Flow: string(a.cfg.Flow), Resource: key, Expiry: tok.Expiry,
		Scopes: tok.Scope, Refresh: tok.RefreshToken != ""}
	res.Email = a.cfg.Email
	if res.Email == "" {
		res.Email = emailFromIDToken(tok.IDToken)
		a.mu.Lock()
		a.email = res.Email
		a.mu.Unlock()
	}
	return res, nil
}

// loginScopes are the scopes a user login asks for: all of the account's
// (Microsoft consents to every resource at once, then issues the first),
// plus openid and profile/email, so the ID token tells who signed in: the
// mailbox when the config names none, and, when it names another one (a
// shared mailbox), whether Graph needs /users/{email} instead of /me
// (SignedInAs).
func (a *Account) loginScopes(p *provider.Provider, all []string) []string {
	scopes := slices.Clone(all)
	extra := []string{"openid", "profile"}
	if p.Kind != provider.KindMicrosoft {
		extra = []string{"openid", "email"}
	}
	for _, s := range extra {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes
}

// replaceTokens stores the login in place of the account's records, in one
// atomic write (tokens.ReplaceLogin): a crash leaves the old login or the
// new one, never no token, and no access token of the old login survives.
func (a *Account) replaceTokens(ctx context.Context, key string, tok *oauth.Token) error {
	if err := tokens.ReplaceLogin(ctx, a.m.store, a.cfg.Name, key, tok); err != nil {
		return err
	}
	a.mu.Lock()
	a.sources = map[string]*tokens.Source{} // their cached tokens belong to the old login
	a.mu.Unlock()
	return nil
}
