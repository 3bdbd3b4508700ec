// Package config reads mailoauth's TOML config file, checks it, fills in the
// defaults of each provider and cloud, and hands the rest of the program
// validated, typed values.
//
// Every problem is reported with the file and line it comes from, all at
// once: unknown keys (with the likely intended key), wrong types, bad values
// and missing ones. Secrets are never in the result: keys such as
// client_secret hold a [Secret] reference (env:, file:, cmd:, keyring:) that
// is resolved only when a command needs it.
//
//	cfg, err := config.Load("/home/alice/.config/mailoauth/config.toml")
//	if err != nil { ... } // *config.Error: one "file:line: key: message" per problem
//	acct, err := cfg.Account("work")
//	secret, err := acct.ClientSecret.Resolve(ctx)
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mailoauth/mailoauth/internal/paths"
	"github.com/mailoauth/mailoauth/internal/tomlpos"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/provider"
)

// Config is a checked config file with every default filled in.
type Config struct {
	// File is the absolute path of the file read. Relative paths inside it
	// (certificate, ca_file, tls_cert, file: secrets) resolve against its
	// folder.
	File string
	// Store is the token store URL: "sqlite:/abs/path/tokens.db" (default,
	// in the state directory) or "postgres://…".
	Store string
	// StorePassphrase, when set, derives the store's encryption key from a
	// passphrase (argon2id) instead of the OS keyring or a key file.
	StorePassphrase Secret
	// Accounts by name.
	Accounts map[string]*Account
	// Proxies by protocol ("imap", "pop3", "smtp"); absent ones are off.
	Proxies map[string]*Proxy
	// Serve configures the daemon (mailoauth serve).
	Serve Serve
	// Warnings are problems that do not stop mailoauth, such as a secret
	// written as a literal. Commands print them on stderr.
	Warnings []Problem
}

// Provider names a family of authorization servers.
type Provider string

// The providers an account can use.
const (
	Microsoft Provider = "microsoft"
	Google    Provider = "google"
	OIDC      Provider = "oidc" // any OAuth 2.0 / OpenID Connect server, by issuer discovery
)

// Flow is the OAuth grant an account logs in with.
type Flow string

// The flows. FlowPassword (ROPC) exists only for accounts that ask for it:
// it fails for every account with MFA.
const (
	FlowDevice            Flow = "device"
	FlowAuthCode          Flow = "authcode"
	FlowClientCredentials Flow = "client_credentials"
	FlowPassword          Flow = "password"
)

// Account is one [accounts.NAME] table.
type Account struct {
	Name     string
	Provider Provider
	ClientID string
	// ClientSecret is empty for public clients.
	ClientSecret Secret
	// Certificate is the absolute path of a PEM (certificate + key) or PFX
	// file, or "".
	Certificate         string
	CertificatePassword Secret
	// AssertionAlg signs client assertions: PS256/384/512 or RS256/384/512
	// for an RSA key, ES256/384/512 for an ECDSA key. "" is automatic:
	// PS256 on Microsoft (set here), else the first algorithm the key can
	// sign with that the server's metadata lists.
	AssertionAlg string
	// X5C puts the certificate chain in the assertion header.
	X5C bool
	// AuthMethod sends the client secret as "client_secret_basic" or
	// "client_secret_post"; "" (an oidc account that does not set it) is
	// automatic: what the server's metadata advertises.
	AuthMethod string
	Flow       Flow
	// Scopes as written (presets like "imap" or full scope strings), or the
	// provider's default; the provider package expands them.
	Scopes []string
	// Email is the mailbox used in SASL and Graph ("" = learn it at login).
	Email string
	// Password is the user's password, for FlowPassword only.
	Password Secret
	// Tenant and Cloud are Microsoft's; empty for other providers.
	Tenant string
	Cloud  string
	// Authority replaces the cloud's login host (the emulator), "" if not set.
	Authority string
	// Issuer is the OIDC issuer whose discovery document gives the endpoints.
	Issuer string
	// RedirectURI is where the authorization code comes back; an http
	// loopback URI without a port means "pick a free port".
	RedirectURI string
	// Mail servers; nil when the provider has no default and none is set.
	IMAP *Server
	POP3 *Server
	SMTP *Server
	// Graph is the Microsoft Graph base URL ("" for other providers).
	Graph string
	// CAFile is the absolute path of extra CA certificates (PEM) trusted
	// for this account's servers, or "".
	CAFile string
	// SASL picks the mechanism: "auto", "xoauth2" or "oauthbearer".
	SASL string
}

// Confidential reports whether the account authenticates the client itself
// (secret or certificate).
func (a *Account) Confidential() bool { return a.ClientSecret.IsSet() || a.Certificate != "" }

// Security is how a mail connection is protected.
type Security string

// The three ways. SecurityNone exists only for loopback test servers and
// must be asked for by scheme name (imap+insecure…).
const (
	SecurityTLS      Security = "tls"      // implicit TLS from the first byte (imaps, pop3s, smtps)
	SecurityStartTLS Security = "starttls" // plain greeting, then STARTTLS, required (imap, pop3, smtp)
	SecurityNone     Security = "none"     // plain text (imap+insecure, …), loopback only
)

// Server is a checked mail server URL.
type Server struct {
	URL      string // normalised, always with a port: imaps://outlook.office365.com:993
	Protocol string // imap, pop3 or smtp
	Security Security
	Host     string
	Port     int
}

// Addr is host:port, for net.Dial.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Proxy is one [proxy.PROTOCOL] table: a local listener for password-only
// mail clients.
type Proxy struct {
	Protocol string // imap, pop3 or smtp
	Listen   string // host:port
	// Accounts allowed to log in here; the local username is the
	// account's email.
	Accounts []string
	// Upstream overrides each account's own server; nil = the account's.
	Upstream *Server
	// TLS is the local side: "none", "starttls" or "implicit".
	TLS string
	// TLSCert is the absolute path of the local certificate + key (PEM),
	// generated when absent; "" = in the state directory.
	TLSCert                  string
	MaxConnections           int
	MaxConnectionsPerAccount int // 0 = no limit
	IdleTimeout              time.Duration
}

// Serve is the [serve] table: the daemon's socket, metrics and hooks.
type Serve struct {
	Socket  string // absolute path of the daemon's Unix socket
	Metrics string // loopback host:port for /metrics, "" = off
	// Hooks: shell commands run on events (sh -c), "" = none.
	OnRelogin string // an account needs an interactive login again
	OnError   string // a refresh failed
	OnToken   string // a token was obtained or refreshed
}

// Proxy defaults. 30 minutes is the IMAP autologout floor (RFC 9051 §5.4).
const (
	DefaultMaxConnections = 16384
	DefaultIdleTimeout    = 30 * time.Minute
)

// AccountNames lists the account names, sorted.
func (c *Config) AccountNames() []string {
	names := make([]string, 0, len(c.Accounts))
	for n := range c.Accounts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrNoAccount is wrapped by Account's error for a name that is not
// configured.
var ErrNoAccount = errors.New("no such account")

// Account returns the account called name, or an error naming the accounts
// that exist.
func (c *Config) Account(name string) (*Account, error) {
	if a, ok := c.Accounts[name]; ok {
		return a, nil
	}
	names := c.AccountNames()
	if len(names) == 0 {
		return nil, fmt.Errorf("account %q: %w: %s defines no accounts; add an [accounts.%s] table", name, ErrNoAccount, c.File, name)
	}
	return nil, fmt.Errorf("account %q: %w in %s; known accounts: %s", name, ErrNoAccount, c.File, strings.Join(names, ", "))
}

// Problem is one mistake in the config file, or one warning.
type Problem struct {
	File string
	Line int    // 1-based; 0 when the place is not known
	Key  string // dotted key path, "" for syntax errors
	Msg  string
}

// String is "FILE:LINE: KEY: MESSAGE" (LINE and KEY left out when unknown),
// the form editors and terminals link to.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a config file, one per line.
type Error struct {
	Problems []Problem
}

// Error lists the problems, one per line, in file order.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ErrNotFound is wrapped by Load's error when the file does not exist.
var ErrNotFound = errors.New("config file not found")

// Load reads and checks the config file at path (absolute, see
// paths.ConfigFile).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist; create it (see the README's Configuration section) or name another with --config", ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parseFile(path, data, fileMode(path))
}

// fileMode is the permission bits of path, 0 when they cannot be read or
// mean nothing (Windows), so a literal secret's warning says nothing about
// them.
func fileMode(path string) fs.FileMode {
	if runtime.GOOS == "windows" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Mode().Perm()
}

// Parse checks the config document data as if read from file (whose folder
// anchors relative paths). On failure the error is an *Error.
func Parse(file string, data []byte) (*Config, error) { return parseFile(file, data, 0) }

// parseFile is Parse for a file whose permission bits are mode (0 = unknown).
func parseFile(file string, data []byte, mode fs.FileMode) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("config path %s: %w", file, err)
	}
	l := &loader{path: abs, dir: filepath.Dir(abs), mode: mode}

	// Pass 1: syntax, into plain maps.
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Usage != "" {
				msg += " (" + strings.TrimSpace(strings.SplitN(pe.Usage, "\n", 2)[0]) + ")"
			}
			l.problems = append(l.problems, Problem{File: abs, Line: pe.Position.Line, Msg: "syntax error: " + msg})
		} else {
			l.problems = append(l.problems, Problem{File: abs, Msg: "syntax error: " + err.Error()})
		}
		return nil, l.err()
	}
	l.lines = tomlpos.KeyLines(string(data))

	// Pass 2: unknown keys and wrong types, all of them.
	checkShape(doc, reflect.TypeFor[rawFile](), nil, func(k toml.Key, msg string) { l.errorf(k, "%s", msg) })
	if len(l.problems) > 0 {
		return nil, l.err()
	}

	// Pass 3: decode (cannot fail on type now) and check values.
	var raw rawFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		l.problems = append(l.problems, Problem{File: abs, Msg: err.Error()})
		return nil, l.err()
	}
	for _, k := range md.Undecoded() { // belt and braces: checkShape saw them all
		l.errorf(k, "unknown key")
	}
	cfg := l.build(&raw)
	if err := l.err(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(l.warnings, func(a, b Problem) int { return a.Line - b.Line })
	cfg.Warnings = l.warnings
	return cfg, nil
}

type loader struct {
	path, dir string
	mode      fs.FileMode // the file's permission bits, 0 when not known
	lines     map[string]int
	broken    map[string]bool // accounts with errors, already reported
	problems  []Problem
	warnings  []Problem
}

// line finds where key (or, failing that, its closest parent) is written.
func (l *loader) line(key toml.Key) int {
	for n := len(key); n > 0; n-- {
		if ln, ok := l.lines[key[:n].String()]; ok {
			return ln
		}
	}
	return 0
}

func (l *loader) problem(key toml.Key, format string, args ...any) Problem {
	return Problem{File: l.path, Line: l.line(key), Key: key.String(), Msg: fmt.Sprintf(format, args...)}
}

func (l *loader) errorf(key toml.Key, format string, args ...any) {
	l.problems = append(l.problems, l.problem(key, format, args...))
}

func (l *loader) warnf(key toml.Key, format string, args ...any) {
	l.warnings = append(l.warnings, l.problem(key, format, args...))
}

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(l.problems, func(a, b Problem) int { return a.Line - b.Line })
	return &Error{Problems: l.problems}
}

func (l *loader) build(raw *rawFile) *Config {
	cfg := &Config{File: l.path, Accounts: map[string]*Account{}, Proxies: map[string]*Proxy{}}
	cfg.Store = l.store(raw.Store)
	cfg.StorePassphrase = l.secret(toml.Key{"store_passphrase"}, raw.StorePassphrase)
	for _, name := range sortedMapKeys(raw.Accounts) {
		if a := l.account(name, raw.Accounts[name]); a != nil {
			cfg.Accounts[name] = a
		} else {
			if l.broken == nil {
				l.broken = map[string]bool{}
			}
			l.broken[name] = true
		}
	}
	for _, proto := range sortedMapKeys(raw.Proxy) {
		if p := l.proxy(proto, raw.Proxy[proto], cfg.Accounts); p != nil {
			cfg.Proxies[proto] = p
		}
	}
	cfg.Serve = l.serve(raw.Serve)
	return cfg
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (l *loader) store(s string) string {
	key := toml.Key{"store"}
	state, err := paths.StateDir()
	if s == "" || s == "sqlite:" {
		if err != nil {
			l.errorf(key, "no default token store: %v", err)
			return ""
		}
		return "sqlite:" + filepath.Join(state, "tokens.db")
	}
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		p = strings.TrimPrefix(p, "//") // sqlite:///abs/path
		if !filepath.IsAbs(p) && !strings.HasPrefix(p, "~") {
			if err != nil {
				l.errorf(key, "relative sqlite path needs the state directory: %v", err)
				return ""
			}
			return "sqlite:" + filepath.Join(state, p)
		}
		abs, rerr := paths.Resolve(state, p)
		if rerr != nil {
			l.errorf(key, "%v", rerr)
			return ""
		}
		return "sqlite:" + abs
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		u, perr := url.Parse(s)
		if perr != nil {
			l.errorf(key, "not a valid PostgreSQL URL")
			return ""
		}
		if _, ok := u.User.Password(); ok {
			l.warnf(key, "the store URL holds a password in the config file; leave it out and set PGPASSWORD or use ~/.pgpass")
		}
		return s
	}
	l.errorf(key, "unknown token store %q: use sqlite:PATH or postgres://…", redactURL(s))
	return ""
}

// redactURL hides a password in a URL-like string before it goes into a
// message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// multiTenant reports whether tenant names no single directory.
func multiTenant(tenant string) bool { return provider.ClassifyTenant(tenant) == provider.TenantMulti }

// cloudServers are the default servers of a Microsoft cloud, from the
// provider package's table (reference microsoft-identity.md §1.4, §5.1).
func cloudServers(c provider.Cloud) (imap, pop3, smtp, graph string) {
	return "imaps://" + c.IMAPHost + ":993", "pop3s://" + c.POPHost + ":995", "smtp://" + c.SMTPHost + ":587", c.GraphURL
}

// Google's mail servers (developers.google.com/gmail/imap/imap-smtp).
const (
	googleIMAP = "imaps://imap.gmail.com:993"
	googlePOP3 = "pop3s://pop.gmail.com:995"
	googleSMTP = "smtp://smtp.gmail.com:587"
)

func (l *loader) account(name string, r *rawAccount) *Account {
	base := toml.Key{"accounts", name}
	k := func(s string) toml.Key { return child(base, s) }
	nprob := len(l.problems)
	if r == nil {
		r = &rawAccount{}
	}
	a := &Account{Name: name, ClientID: r.ClientID, Email: r.Email, X5C: r.X5C}
	if strings.TrimSpace(name) == "" {
		l.errorf(base, "account names must not be empty")
	}

	// Provider.
	switch Provider(r.Provider) {
	case "":
		a.Provider = Microsoft
	case Microsoft, Google, OIDC:
		a.Provider = Provider(r.Provider)
	default:
		l.errorf(k("provider"), "unknown provider %q: use microsoft, google or oidc", r.Provider)
		return nil
	}
	if a.ClientID == "" {
		l.errorf(base, "client_id is required: the application (client) ID of your app registration")
	}

	// Provider-specific endpoints.
	if a.Provider != Microsoft {
		for key, v := range map[string]string{"tenant": r.Tenant, "cloud": r.Cloud, "authority": r.Authority, "graph": r.Graph} {
			if v != "" {
				l.errorf(k(key), "%s applies to provider microsoft only, not %s", key, a.Provider)
			}
		}
	}
	if a.Provider != OIDC && r.Issuer != "" {
		l.errorf(k("issuer"), "issuer applies to provider oidc only (%s endpoints are built in)", a.Provider)
	}
	switch a.Provider {
	case Microsoft:
		a.Tenant = r.Tenant
		if a.Tenant == "" {
			a.Tenant = "common"
		}
		switch provider.ClassifyTenant(a.Tenant) {
		case provider.TenantMulti:
			a.Tenant = strings.ToLower(a.Tenant)
		case provider.TenantGUID, provider.TenantDomain:
		default:
			l.errorf(k("tenant"), "invalid tenant %q: use common, organizations, consumers, the tenant ID (a GUID) or a domain such as contoso.onmicrosoft.com", a.Tenant)
		}
		a.Cloud = r.Cloud
		if a.Cloud == "" {
			a.Cloud = "global"
		}
		if _, ok := provider.Clouds[a.Cloud]; !ok {
			l.errorf(k("cloud"), "unknown cloud %q: use global, usgov, usgov-dod or china", a.Cloud)
			a.Cloud = "global"
		}
		if r.Authority != "" {
			a.Authority = l.baseURL(k("authority"), r.Authority, true)
		}
	case OIDC:
		if r.Issuer == "" {
			l.errorf(base, "issuer is required for provider oidc: the URL whose /.well-known/openid-configuration describes the server")
		} else {
			a.Issuer = l.baseURL(k("issuer"), r.Issuer, false)
		}
	}

	// Flow.
	switch Flow(r.Flow) {
	case "":
		a.Flow = FlowDevice
		if a.Provider != Microsoft {
			a.Flow = FlowAuthCode
		}
	case FlowDevice, FlowAuthCode, FlowClientCredentials, FlowPassword:
		a.Flow = Flow(r.Flow)
	default:
		l.errorf(k("flow"), "unknown flow %q: use device, authcode, client_credentials or password", r.Flow)
	}

	// Credentials.
	a.ClientSecret = l.secret(k("client_secret"), r.ClientSecret)
	a.CertificatePassword = l.secret(k("certificate_password"), r.CertificatePassword)
	a.Password = l.secret(k("password"), r.Password)
	if r.Certificate != "" {
		a.Certificate = l.file(k("certificate"), r.Certificate, true)
	}
	if a.ClientSecret.IsSet() && r.Certificate != "" {
		l.errorf(k("certificate"), "set client_secret or certificate, not both")
	}
	if a.CertificatePassword.IsSet() && r.Certificate == "" {
		l.errorf(k("certificate_password"), "certificate_password needs a certificate")
	}
	switch r.AssertionAlg {
	case "":
		if a.Provider == Microsoft && r.Certificate != "" {
			a.AssertionAlg = "PS256"
		}
	case "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512":
		// What oauth.Certificate can sign with; whether the key fits (RSA
		// for PS/RS, the matching ECDSA curve for ES) is checked when the
		// key is read, at login.
		a.AssertionAlg = r.AssertionAlg
		if r.Certificate == "" {
			l.errorf(k("assertion_alg"), "assertion_alg needs a certificate")
		}
	default:
		l.errorf(k("assertion_alg"), "unknown assertion_alg %q: use PS256, PS384, PS512, RS256, RS384 or RS512 (RSA keys), ES256, ES384 or ES512 (ECDSA keys), or leave it unset to follow the server", r.AssertionAlg)
	}
	if r.X5C && r.Certificate == "" {
		l.errorf(k("x5c"), "x5c needs a certificate")
	}
	switch r.AuthMethod {
	case "":
		// Microsoft and Google take the secret in the body, as their own
		// libraries send it. Any other server: "" leaves the choice to
		// oauth.SecretAuto, which follows the server's
		// token_endpoint_auth_methods_supported, so a server that lists
		// only client_secret_post works without a setting.
		if a.ClientSecret.IsSet() && a.Provider != OIDC {
			a.AuthMethod = "client_secret_post"
		}
	case "client_secret_basic", "client_secret_post":
		a.AuthMethod = r.AuthMethod
		if !a.ClientSecret.IsSet() {
			l.errorf(k("auth_method"), "auth_method needs a client_secret")
		}
	default:
		l.errorf(k("auth_method"), "unknown auth_method %q: use client_secret_basic or client_secret_post (a certificate always uses private_key_jwt)", r.AuthMethod)
	}

	// Mailbox.
	if a.Email != "" {
		if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email {
			l.errorf(k("email"), "%q is not a plain email address such as alice@contoso.com", a.Email)
		}
	}

	// Scopes.
	for i, s := range r.Scopes {
		if strings.TrimSpace(s) == "" {
			l.errorf(k("scopes"), "scope %d is empty", i+1)
		}
	}
	a.Scopes = r.Scopes
	if len(a.Scopes) == 0 {
		switch {
		case a.Provider == OIDC:
			l.errorf(base, "scopes is required for provider oidc: mailoauth cannot guess your server's mail scope")
		case a.Flow == FlowClientCredentials:
			a.Scopes = []string{"imap"} // the provider package turns it into the Exchange "/.default"
		default:
			a.Scopes = []string{"imap", "smtp", "offline_access"}
		}
	}

	// Flow rules.
	switch a.Flow {
	case FlowClientCredentials:
		if !a.Confidential() {
			l.errorf(k("flow"), "client_credentials needs a client_secret or a certificate")
		}
		if a.Provider == Microsoft && multiTenant(a.Tenant) {
			was := fmt.Sprintf("not %q", a.Tenant)
			if r.Tenant == "" {
				was = "not the default \"common\""
			}
			l.errorf(k("tenant"), "client_credentials needs the tenant ID or domain, %s (set tenant = \"contoso.onmicrosoft.com\" or the directory GUID)", was)
		}
		if a.Provider == Google {
			l.errorf(k("flow"), "google does not offer client_credentials for mail (Gmail app access needs a service account with domain-wide delegation, which mailoauth does not support)")
		}
		if a.Email == "" {
			l.errorf(base, "email is required with client_credentials: it names the mailbox the application acts on")
		}
	case FlowPassword:
		if a.Provider == Google {
			l.errorf(k("flow"), "google does not offer the password flow")
		}
		if a.Provider == Microsoft && (a.Tenant == "common" || a.Tenant == "consumers") {
			l.errorf(k("tenant"), "the password flow cannot use tenant %q (Microsoft answers AADSTS9001023): set the tenant ID, a domain or organizations", a.Tenant)
		}
		if a.Email == "" {
			l.errorf(base, "email is required with the password flow: it is the user name")
		}
	case FlowDevice:
		if a.Provider == Google && slices.ContainsFunc(a.Scopes, isGoogleMailScope) {
			l.errorf(k("flow"), "google refuses the device flow for mail scopes (https://mail.google.com/): use flow = \"authcode\"")
		}
	}
	if a.Password.IsSet() && a.Flow != FlowPassword {
		l.errorf(k("password"), "password is used by flow = \"password\" only; remove it")
	}
	if a.Flow == FlowPassword {
		l.warnf(k("flow"), "the password flow (ROPC) fails for accounts with MFA or conditional access, and Microsoft discourages it")
	}

	// Redirect.
	a.RedirectURI = "http://127.0.0.1"
	if r.RedirectURI != "" {
		a.RedirectURI = l.redirect(k("redirect_uri"), r.RedirectURI)
	}

	// Servers.
	var imapDef, popDef, smtpDef string
	switch a.Provider {
	case Microsoft:
		imapDef, popDef, smtpDef, a.Graph = cloudServers(provider.Clouds[a.Cloud])
		if r.Graph != "" {
			a.Graph = l.baseURL(k("graph"), r.Graph, true)
		}
	case Google:
		imapDef, popDef, smtpDef = googleIMAP, googlePOP3, googleSMTP
	}
	a.IMAP = l.server(k("imap"), "imap", r.IMAP, imapDef)
	a.POP3 = l.server(k("pop3"), "pop3", r.POP3, popDef)
	a.SMTP = l.server(k("smtp"), "smtp", r.SMTP, smtpDef)
	if r.CAFile != "" {
		a.CAFile = l.file(k("ca_file"), r.CAFile, true)
	}
	switch r.SASL {
	case "":
		a.SASL = "auto"
	case "auto", "xoauth2", "oauthbearer":
		a.SASL = r.SASL
	default:
		l.errorf(k("sasl"), "unknown sasl %q: use auto, xoauth2 or oauthbearer", r.SASL)
	}
	if len(l.problems) > nprob {
		return nil
	}
	return a
}

func isGoogleMailScope(s string) bool {
	switch s {
	case "imap", "pop", "smtp", provider.GoogleMailScope:
		return true
	}
	return false
}

// isLoopback reports whether host names this machine. "localhost" counts:
// the user wrote it and the resolver is theirs.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// baseURL checks an https base URL (http only on loopback, for the
// emulator's --http mode). noPath rejects a path, for the authority whose
// tenant comes from the tenant key.
func (l *loader) baseURL(key toml.Key, s string, noPath bool) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		l.errorf(key, "%q is not an absolute https:// URL", s)
		return ""
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		l.errorf(key, "http:// is allowed for loopback hosts only (the emulator); use https://")
		return ""
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		l.errorf(key, "the URL must not hold a user, a query or a fragment")
		return ""
	}
	if noPath && strings.Trim(u.Path, "/") != "" {
		l.errorf(key, "give only scheme://host[:port] (the tenant goes in tenant = %q)", strings.Trim(u.Path, "/"))
		return ""
	}
	return strings.TrimRight(u.String(), "/")
}

func (l *loader) redirect(key toml.Key, s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		l.errorf(key, "%q is not an absolute URL", s)
		return ""
	}
	switch u.Scheme {
	case "http":
		if !isLoopback(u.Hostname()) {
			l.errorf(key, "an http redirect must be a loopback address such as http://127.0.0.1:9999/callback; use https for a web app")
			return ""
		}
	case "https":
	default:
		l.errorf(key, "redirect_uri must be http://127.0.0.1[:port]/… (desktop) or https://… (web app), not %s:", u.Scheme)
		return ""
	}
	if u.Fragment != "" {
		l.errorf(key, "redirect_uri must not have a fragment")
		return ""
	}
	return s
}

// ParseServer checks a mail server URL for protocol ("imap", "pop3",
// "smtp"). It is exported for the proxy's and check's command-line flags.
// The schemes, default ports and rules are mailclient.ParseURL's (one table
// for the whole program: smtp:// means submission on 587 with STARTTLS, not
// port 25); only the words are the config file's, naming the fix.
func ParseServer(proto, s string) (*Server, error) {
	ms, err := mailclient.ParseURL(s)
	if ue, ok := errors.AsType[*mailclient.URLError](err); ok {
		switch ue.Part {
		case mailclient.URLScheme:
			return nil, schemeError(proto, ue.Value)
		case mailclient.URLExtra:
			return nil, fmt.Errorf("%q: give only scheme://host[:port]", s)
		case mailclient.URLPort:
			return nil, fmt.Errorf("invalid port %q", ue.Value)
		case mailclient.URLInsecure:
			return nil, fmt.Errorf("%s sends the token in plain text and is allowed for loopback hosts only, not %s", schemeOf(s)+"://", ue.Value)
		}
		return nil, fmt.Errorf("%q is not a URL such as %ss://host:port", s, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL such as %ss://host:port", s, proto)
	}
	if string(ms.Protocol) != proto {
		return nil, schemeError(proto, schemeOf(s))
	}
	srv := &Server{Protocol: proto, Host: ms.Host, Port: ms.Port, URL: ms.URL()}
	switch ms.Security {
	case mailclient.ImplicitTLS:
		srv.Security = SecurityTLS
	case mailclient.StartTLS:
		srv.Security = SecurityStartTLS
	case mailclient.Insecure:
		srv.Security = SecurityNone
	}
	return srv, nil
}

func schemeError(proto, scheme string) error {
	return fmt.Errorf("scheme %q: use %ss:// (TLS), %s:// (STARTTLS, required) or %s+insecure:// (plain text, loopback only)", scheme, proto, proto, proto)
}

// schemeOf is the lower-cased scheme of a URL mailclient.ParseURL read.
func schemeOf(s string) string {
	scheme, _, _ := strings.Cut(s, ":")
	return strings.ToLower(scheme)
}

func (l *loader) server(key toml.Key, proto, s, def string) *Server {
	if s == "" {
		s = def
	}
	if s == "" {
		return nil
	}
	srv, err := ParseServer(proto, s)
	if err != nil {
		l.errorf(key, "%v", err)
		return nil
	}
	return srv
}

// file resolves a path against the config folder; mustExist checks it now
// so a typo shows up in `config check`, not in the middle of a login.
func (l *loader) file(key toml.Key, p string, mustExist bool) string {
	abs, err := paths.Resolve(l.dir, p)
	if err != nil {
		l.errorf(key, "%v", err)
		return ""
	}
	if mustExist {
		if _, err := os.Stat(abs); err != nil {
			l.errorf(key, "cannot read %s: %v", abs, errors.Unwrap(err))
			return ""
		}
	}
	return abs
}

var proxyDefaults = map[string]string{"imap": "127.0.0.1:1993", "pop3": "127.0.0.1:1995", "smtp": "127.0.0.1:1587"}

func (l *loader) proxy(proto string, r *rawProxy, accounts map[string]*Account) *Proxy {
	base := toml.Key{"proxy", proto}
	k := func(s string) toml.Key { return child(base, s) }
	if _, ok := proxyDefaults[proto]; !ok {
		l.errorf(base, "unknown proxy %q: use [proxy.imap], [proxy.pop3] or [proxy.smtp]", proto)
		return nil
	}
	if r == nil {
		r = &rawProxy{}
	}
	p := &Proxy{Protocol: proto, Listen: r.Listen, TLS: r.TLS, MaxConnections: DefaultMaxConnections, IdleTimeout: DefaultIdleTimeout}
	if p.Listen == "" {
		p.Listen = proxyDefaults[proto]
	}
	host, port, err := net.SplitHostPort(p.Listen)
	switch {
	case err != nil:
		l.errorf(k("listen"), "%q is not host:port such as 127.0.0.1:1993", p.Listen)
	case host == "":
		l.errorf(k("listen"), "name the address: 127.0.0.1:%s (or 0.0.0.0:%s to accept other machines)", port, port)
	case !isLoopback(host):
		l.warnf(k("listen"), "the proxy accepts connections from other machines on %s", host)
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
		l.errorf(k("listen"), "invalid port %d", n)
	}
	switch p.TLS {
	case "":
		p.TLS = "none"
	case "none", "starttls", "implicit":
	default:
		l.errorf(k("tls"), "unknown tls %q: use none, starttls or implicit", p.TLS)
	}
	if p.TLS == "none" && err == nil && host != "" && !isLoopback(host) {
		l.warnf(k("tls"), "local passwords cross the network in plain text: set tls = \"starttls\" or \"implicit\"")
	}
	if r.TLSCert != "" {
		p.TLSCert = l.file(k("tls_cert"), r.TLSCert, false)
	}
	if r.Upstream != "" {
		p.Upstream = l.server(k("upstream"), proto, r.Upstream, "")
	}
	if r.MaxConnections != nil {
		if *r.MaxConnections < 1 {
			l.errorf(k("max_connections"), "must be at least 1")
		}
		p.MaxConnections = *r.MaxConnections
	}
	if r.MaxConnectionsPerAccount != nil {
		if *r.MaxConnectionsPerAccount < 0 {
			l.errorf(k("max_connections_per_account"), "must be 0 (no limit) or more")
		}
		p.MaxConnectionsPerAccount = *r.MaxConnectionsPerAccount
	}
	if r.IdleTimeout != "" {
		d, err := time.ParseDuration(r.IdleTimeout)
		if err != nil || d <= 0 {
			l.errorf(k("idle_timeout"), "%q is not a duration such as \"30m\"", r.IdleTimeout)
		}
		p.IdleTimeout = d
	}
	if len(r.Accounts) == 0 {
		l.errorf(base, "accounts is required: the accounts that may log in through this proxy")
	}
	emails := map[string]string{}
	for _, name := range r.Accounts {
		a, ok := accounts[name]
		if !ok {
			if !l.broken[name] {
				l.errorf(k("accounts"), "no account %q is defined; add an [accounts.%s] table", name, name)
			}
			continue
		}
		if a.Email == "" {
			l.errorf(k("accounts"), "account %q has no email: the proxy's local user name is the account's email", name)
			continue
		}
		if other, dup := emails[strings.ToLower(a.Email)]; dup {
			l.errorf(k("accounts"), "accounts %q and %q share the email %s, so a local login cannot tell them apart", other, name, a.Email)
		}
		emails[strings.ToLower(a.Email)] = name
		if p.Upstream == nil {
			if s := map[string]*Server{"imap": a.IMAP, "pop3": a.POP3, "smtp": a.SMTP}[proto]; s == nil {
				l.errorf(k("accounts"), "account %q has no %s server: set %s in the account or upstream here", name, proto, proto)
			}
		}
	}
	p.Accounts = r.Accounts
	return p
}

func (l *loader) serve(r *rawServe) Serve {
	if r == nil {
		r = &rawServe{}
	}
	s := Serve{Metrics: r.Metrics, OnRelogin: r.OnRelogin, OnError: r.OnError, OnToken: r.OnToken}
	if r.Socket != "" {
		s.Socket = l.file(toml.Key{"serve", "socket"}, r.Socket, false)
	} else if dir, err := paths.RuntimeDir(); err == nil {
		s.Socket = filepath.Join(dir, "daemon.sock")
	}
	if s.Metrics != "" {
		host, _, err := net.SplitHostPort(s.Metrics)
		switch {
		case err != nil || host == "":
			l.errorf(toml.Key{"serve", "metrics"}, "%q is not host:port such as 127.0.0.1:9464", s.Metrics)
		case !isLoopback(host):
			l.warnf(toml.Key{"serve", "metrics"}, "metrics are served to other machines on %s", host)
		}
	}
	return s
}
