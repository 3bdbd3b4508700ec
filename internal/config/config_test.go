package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// setup gives each test its own state directory and a config folder with a
// certificate and CA file, so relative paths resolve.
func setup(t *testing.T) (dir string) {
	t.Helper()
	t.Setenv("MAILOAUTH_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	dir = t.TempDir()
	for _, f := range []string{"app.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func parse(t *testing.T, dir, doc string) (*Config, error) {
	t.Helper()
	return Parse(filepath.Join(dir, "config.toml"), []byte(doc))
}

const guid = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// TestProblems checks that each mistake is reported at its line and key,
// with a message that says what to do.
func TestProblems(t *testing.T) {
	type want struct {
		line int
		key  string
		msg  string // a fragment of the message
	}
	tests := []struct {
		name string
		doc  string
		want []want
	}{
		{"syntax error", "[accounts.a]\nprovider = \"microsoft\nclient_id = \"x\"\n", []want{{2, "", "syntax error"}}},
		{"duplicate key", "[accounts.a]\nclient_id = \"x\"\nclient_id = \"y\"\n", []want{{3, "", "syntax error"}}},
		{"unknown top-level key", "\n\nstor = \"sqlite:\"\n", []want{{3, "stor", `unknown key "stor" at the top level (did you mean "store"?)`}}},
		{"unknown account key", "[accounts.a]\nclient_id = \"x\"\n\nclientid = \"y\"\n", []want{{4, "accounts.a.clientid", `did you mean "client_id"?`}}},
		{"unknown key far from any", "[accounts.a]\nclient_id = \"x\"\nwibble_wobble = 1\n", []want{{3, "accounts.a.wibble_wobble", "known keys: assertion_alg, auth_method, authority, ca_file"}}},
		{"unknown key in quoted account", "[accounts.\"my box\"]\nclient_id = \"x\"\ncolour = \"red\"\n", []want{{3, `accounts."my box".colour`, "unknown key"}}},
		{"unknown key in dotted form", "accounts.a.client_id = \"x\"\naccounts.a.nope = 1\n", []want{{2, "accounts.a.nope", "unknown key"}}},
		{"unknown key in inline table", "accounts = { a = { client_id = \"x\",\n nope = 1 } }\n", []want{{2, "accounts.a.nope", "unknown key"}}},
		{"unknown key after multi-line string", "[accounts.a]\nclient_id = \"\"\"\nx\n[not.a.table]\n\"\"\"\nnope = 1\n", []want{{6, "accounts.a.nope", "unknown key"}}},
		{"no TLS opt-out key", "[accounts.a]\nclient_id = \"x\"\ntls_insecure_skip_verify = true\n", []want{{3, "accounts.a.tls_insecure_skip_verify", "TLS is always verified: trust a private CA with ca_file"}}},
		{"unknown serve key", "[serve]\nmetric = \"127.0.0.1:9\"\n", []want{{2, "serve.metric", `did you mean "metrics"?`}}},
		{"wrong type string", "[accounts.a]\nclient_id = 5\n", []want{{2, "accounts.a.client_id", "must be a string, not integer"}}},
		{"wrong type array", "[accounts.a]\nclient_id = \"x\"\nscopes = \"imap smtp\"\n", []want{{3, "accounts.a.scopes", "must be an array of strings, not string"}}},
		{"wrong element type", "[accounts.a]\nclient_id = \"x\"\nscopes = [\n \"imap\",\n 2]\n", []want{{3, "accounts.a.scopes", "element 2 must be a string, not integer"}}},
		{"wrong type bool", "[accounts.a]\nclient_id = \"x\"\nx5c = \"yes\"\n", []want{{3, "accounts.a.x5c", "must be a boolean"}}},
		{"account not a table", "accounts = 3\n", []want{{1, "accounts", "must be a table, not integer"}}},
		{"several problems in order", "[accounts.a]\nclient_id = 1\nflw = \"device\"\n[accounts.b]\nnope = true\n", []want{
			{2, "accounts.a.client_id", "must be a string"}, {3, "accounts.a.flw", `did you mean "flow"?`}, {5, "accounts.b.nope", "unknown key"}}},
		{"missing client_id", "[accounts.a]\nprovider = \"microsoft\"\n", []want{{1, "accounts.a", "client_id is required"}}},
		{"bad provider", "[accounts.a]\nclient_id = \"x\"\nprovider = \"outlook\"\n", []want{{3, "accounts.a.provider", "use microsoft, google or oidc"}}},
		{"bad flow", "[accounts.a]\nclient_id = \"x\"\nflow = \"devicecode\"\n", []want{{3, "accounts.a.flow", "use device, authcode, client_credentials or password"}}},
		{"bad tenant", "[accounts.a]\nclient_id = \"x\"\ntenant = \"not a tenant\"\n", []want{{3, "accounts.a.tenant", "common, organizations, consumers"}}},
		{"bad cloud", "[accounts.a]\nclient_id = \"x\"\ncloud = \"germany\"\n", []want{{3, "accounts.a.cloud", "global, usgov, usgov-dod or china"}}},
		{"tenant on google", "[accounts.a]\nprovider = \"google\"\nclient_id = \"x\"\ntenant = \"common\"\n", []want{{4, "accounts.a.tenant", "microsoft only"}}},
		{"issuer on microsoft", "[accounts.a]\nclient_id = \"x\"\nissuer = \"https://x\"\n", []want{{3, "accounts.a.issuer", "oidc only"}}},
		{"oidc needs issuer and scopes", "[accounts.a]\nprovider = \"oidc\"\nclient_id = \"x\"\n", []want{{1, "accounts.a", "issuer is required"}, {1, "accounts.a", "scopes is required"}}},
		{"oidc http issuer off loopback", "[accounts.a]\nprovider = \"oidc\"\nclient_id = \"x\"\nscopes = [\"mail\"]\nissuer = \"http://idp.example.com\"\n", []want{{5, "accounts.a.issuer", "loopback hosts only"}}},
		{"authority with tenant path", "[accounts.a]\nclient_id = \"x\"\nauthority = \"https://login.microsoftonline.com/contoso.com\"\n", []want{{3, "accounts.a.authority", `tenant goes in tenant = "contoso.com"`}}},
		{"client_credentials without credential", "[accounts.a]\nclient_id = \"x\"\nflow = \"client_credentials\"\ntenant = \"" + guid + "\"\nemail = \"a@b.example\"\n", []want{{3, "accounts.a.flow", "needs a client_secret or a certificate"}}},
		{"client_credentials on common", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"env:S\"\nflow = \"client_credentials\"\nemail = \"a@b.example\"\n", []want{{1, "accounts.a.tenant", "needs the tenant ID or domain"}}},
		{"client_credentials on organizations", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"env:S\"\nflow = \"client_credentials\"\ntenant = \"organizations\"\nemail = \"a@b.example\"\n", []want{{5, "accounts.a.tenant", `not "organizations"`}}},
		{"client_credentials without email", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"env:S\"\nflow = \"client_credentials\"\ntenant = \"contoso.com\"\n", []want{{1, "accounts.a", "email is required with client_credentials"}}},
		{"google client_credentials", "[accounts.a]\nprovider = \"google\"\nclient_id = \"x\"\nclient_secret = \"env:S\"\nemail = \"a@b.example\"\nflow = \"client_credentials\"\n", []want{{6, "accounts.a.flow", "service account"}}},
		{"google device for mail", "[accounts.a]\nprovider = \"google\"\nclient_id = \"x\"\nflow = \"device\"\n", []want{{4, "accounts.a.flow", "refuses the device flow"}}},
		{"password flow on common", "[accounts.a]\nclient_id = \"x\"\nflow = \"password\"\nemail = \"a@b.example\"\n", []want{{1, "accounts.a.tenant", "AADSTS9001023"}}},
		{"password key without password flow", "[accounts.a]\nclient_id = \"x\"\npassword = \"env:P\"\n", []want{{3, "accounts.a.password", `flow = "password" only`}}},
		{"secret and certificate", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"env:S\"\ncertificate = \"app.pem\"\n", []want{{4, "accounts.a.certificate", "not both"}}},
		{"missing certificate file", "[accounts.a]\nclient_id = \"x\"\ncertificate = \"nope.pfx\"\n", []want{{3, "accounts.a.certificate", "nope.pfx: no such file"}}},
		{"certificate options without certificate", "[accounts.a]\nclient_id = \"x\"\ncertificate_password = \"env:P\"\nassertion_alg = \"RS256\"\nx5c = true\n", []want{
			{3, "accounts.a.certificate_password", "needs a certificate"}, {4, "accounts.a.assertion_alg", "needs a certificate"}, {5, "accounts.a.x5c", "needs a certificate"}}},
		{"bad assertion_alg", "[accounts.a]\nclient_id = \"x\"\ncertificate = \"app.pem\"\nassertion_alg = \"ES257\"\n", []want{{4, "accounts.a.assertion_alg", "use PS256, PS384, PS512, RS256"}}},
		{"bad auth_method", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"env:S\"\nauth_method = \"private_key_jwt\"\n", []want{{4, "accounts.a.auth_method", "certificate always uses private_key_jwt"}}},
		{"auth_method without secret", "[accounts.a]\nclient_id = \"x\"\nauth_method = \"client_secret_post\"\n", []want{{3, "accounts.a.auth_method", "needs a client_secret"}}},
		{"bad sasl", "[accounts.a]\nclient_id = \"x\"\nsasl = \"plain\"\n", []want{{3, "accounts.a.sasl", "auto, xoauth2 or oauthbearer"}}},
		{"bad email", "[accounts.a]\nclient_id = \"x\"\nemail = \"Alice <alice@contoso.com>\"\n", []want{{3, "accounts.a.email", "plain email address"}}},
		{"empty scope", "[accounts.a]\nclient_id = \"x\"\nscopes = [\"imap\", \"\"]\n", []want{{3, "accounts.a.scopes", "scope 2 is empty"}}},
		{"http redirect off loopback", "[accounts.a]\nclient_id = \"x\"\nredirect_uri = \"http://example.com/cb\"\n", []want{{3, "accounts.a.redirect_uri", "loopback"}}},
		{"custom scheme redirect", "[accounts.a]\nclient_id = \"x\"\nredirect_uri = \"myapp://cb\"\n", []want{{3, "accounts.a.redirect_uri", "not myapp:"}}},
		{"imap scheme for smtp", "[accounts.a]\nclient_id = \"x\"\nsmtp = \"imaps://smtp.example.com\"\n", []want{{3, "accounts.a.smtp", "use smtps:// (TLS), smtp:// (STARTTLS, required)"}}},
		{"insecure off loopback", "[accounts.a]\nclient_id = \"x\"\npop3 = \"pop3+insecure://mail.example.com:110\"\n", []want{{3, "accounts.a.pop3", "loopback hosts only"}}},
		{"server with path", "[accounts.a]\nclient_id = \"x\"\nimap = \"imaps://mail.example.com/INBOX\"\n", []want{{3, "accounts.a.imap", "only scheme://host[:port]"}}},
		{"bad port", "[accounts.a]\nclient_id = \"x\"\nimap = \"imaps://mail.example.com:99999\"\n", []want{{3, "accounts.a.imap", "invalid port"}}},
		{"graph on oidc", "[accounts.a]\nprovider = \"oidc\"\nissuer = \"https://idp.example\"\nscopes = [\"mail\"]\nclient_id = \"x\"\ngraph = \"https://graph.microsoft.com\"\n", []want{{6, "accounts.a.graph", "microsoft only"}}},
		{"missing ca_file", "[accounts.a]\nclient_id = \"x\"\nca_file = \"missing-ca.pem\"\n", []want{{3, "accounts.a.ca_file", "cannot read"}}},
		{"empty env reference", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"env:\"\n", []want{{3, "accounts.a.client_secret", "env: needs a name"}}},
		{"empty cmd reference", "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"cmd:  \"\n", []want{{3, "accounts.a.client_secret", "cmd: needs a command"}}},
		{"bad store", "store = \"redis://x\"\n", []want{{1, "store", "use sqlite:PATH or postgres://"}}},
		{"unknown proxy", "[proxy.imaps]\naccounts = []\n", []want{{1, "proxy.imaps", "use [proxy.imap], [proxy.pop3] or [proxy.smtp]"}}},
		{"proxy problems", "[accounts.a]\nclient_id = \"x\"\n[proxy.imap]\nlisten = \":1993\"\naccounts = [\"a\", \"ghost\"]\ntls = \"ssl\"\nidle_timeout = \"forever\"\nmax_connections = 0\n", []want{
			{4, "proxy.imap.listen", "name the address: 127.0.0.1:1993"},
			{5, "proxy.imap.accounts", `account "a" has no email`},
			{5, "proxy.imap.accounts", `no account "ghost" is defined`},
			{6, "proxy.imap.tls", "none, starttls or implicit"},
			{7, "proxy.imap.idle_timeout", "not a duration"},
			{8, "proxy.imap.max_connections", "at least 1"}}},
		{"proxy duplicate emails", "[accounts.a]\nclient_id = \"x\"\nemail = \"s@x.example\"\n[accounts.b]\nclient_id = \"y\"\nemail = \"S@x.example\"\n[proxy.smtp]\naccounts = [\"a\", \"b\"]\n", []want{{8, "proxy.smtp.accounts", "share the email"}}},
		{"proxy account without server", "[accounts.a]\nprovider = \"oidc\"\nissuer = \"https://idp.example\"\nscopes = [\"mail\"]\nclient_id = \"x\"\nemail = \"a@x.example\"\n[proxy.pop3]\naccounts = [\"a\"]\n", []want{{8, "proxy.pop3.accounts", "has no pop3 server"}}},
		{"proxy needs accounts", "[proxy.imap]\nlisten = \"127.0.0.1:1993\"\n", []want{{1, "proxy.imap", "accounts is required"}}},
		{"proxy upstream scheme", "[accounts.a]\nclient_id = \"x\"\nemail = \"a@x.example\"\n[proxy.imap]\naccounts = [\"a\"]\nupstream = \"smtp://x.example\"\n", []want{{6, "proxy.imap.upstream", "use imaps://"}}},
		{"metrics address", "[serve]\nmetrics = \"9464\"\n", []want{{2, "serve.metrics", "not host:port"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup(t)
			_, err := parse(t, dir, tt.doc)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("got error %v (%T), want *Error", err, err)
			}
			var gotPos, wantPos []string
			for _, w := range tt.want {
				wantPos = append(wantPos, fmt.Sprintf("%d %s", w.line, w.key))
			}
			for _, p := range cerr.Problems {
				gotPos = append(gotPos, fmt.Sprintf("%d %s", p.Line, p.Key))
				if p.File != filepath.Join(dir, "config.toml") {
					t.Errorf("problem file = %q", p.File)
				}
			}
			if diff := cmp.Diff(wantPos, gotPos); diff != "" {
				t.Fatalf("problem places (-want +got):\n%s\nerror:\n%v", diff, err)
			}
			for i, w := range tt.want {
				if !strings.Contains(cerr.Problems[i].Msg, w.msg) {
					t.Errorf("problem %d = %q, want it to contain %q", i, cerr.Problems[i].Msg, w.msg)
				}
			}
			// The rendered error is what users see: file:line: key: message.
			first := cerr.Problems[0]
			prefix := fmt.Sprintf("%s:%d: ", filepath.Join(dir, "config.toml"), first.Line)
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

// TestDefaults checks what an account gets when it says little.
func TestDefaults(t *testing.T) {
	srv := func(proto, url string, sec Security, host string, port int) *Server {
		return &Server{URL: url, Protocol: proto, Security: sec, Host: host, Port: port}
	}
	tests := []struct {
		name string
		doc  string
		want *Account
	}{
		{"microsoft global", `[accounts.a]
client_id = "x"`, &Account{
			Provider: Microsoft, ClientID: "x", Flow: FlowDevice, Scopes: []string{"imap", "smtp", "offline_access"},
			Tenant: "common", Cloud: "global", RedirectURI: "http://127.0.0.1", SASL: "auto",
			IMAP:  srv("imap", "imaps://outlook.office365.com:993", SecurityTLS, "outlook.office365.com", 993),
			POP3:  srv("pop3", "pop3s://outlook.office365.com:995", SecurityTLS, "outlook.office365.com", 995),
			SMTP:  srv("smtp", "smtp://smtp.office365.com:587", SecurityStartTLS, "smtp.office365.com", 587),
			Graph: "https://graph.microsoft.com",
		}},
		{"microsoft usgov app with certificate", `[accounts.a]
client_id = "x"
tenant = "Contoso.onmicrosoft.com"
cloud = "usgov"
flow = "client_credentials"
certificate = "app.pem"
email = "shared@contoso.com"`, &Account{
			Provider: Microsoft, ClientID: "x", Flow: FlowClientCredentials, Scopes: []string{"imap"},
			Tenant: "Contoso.onmicrosoft.com", Cloud: "usgov", RedirectURI: "http://127.0.0.1", SASL: "auto",
			Email: "shared@contoso.com", AssertionAlg: "PS256",
			IMAP:  srv("imap", "imaps://outlook.office365.us:993", SecurityTLS, "outlook.office365.us", 993),
			POP3:  srv("pop3", "pop3s://outlook.office365.us:995", SecurityTLS, "outlook.office365.us", 995),
			SMTP:  srv("smtp", "smtp://smtp.office365.us:587", SecurityStartTLS, "smtp.office365.us", 587),
			Graph: "https://graph.microsoft.us",
		}},
		{"microsoft china, upper-case tenant keyword", `[accounts.a]
client_id = "x"
tenant = "Organizations"
cloud = "china"`, &Account{
			Provider: Microsoft, ClientID: "x", Flow: FlowDevice, Scopes: []string{"imap", "smtp", "offline_access"},
			Tenant: "organizations", Cloud: "china", RedirectURI: "http://127.0.0.1", SASL: "auto",
			IMAP:  srv("imap", "imaps://partner.outlook.cn:993", SecurityTLS, "partner.outlook.cn", 993),
			POP3:  srv("pop3", "pop3s://partner.outlook.cn:995", SecurityTLS, "partner.outlook.cn", 995),
			SMTP:  srv("smtp", "smtp://smtp.partner.outlook.cn:587", SecurityStartTLS, "smtp.partner.outlook.cn", 587),
			Graph: "https://microsoftgraph.chinacloudapi.cn",
		}},
		{"emulator account", `[accounts.a]
client_id = "x"
tenant = "` + guid + `"
authority = "https://127.0.0.1:8443/"
imap = "imap+insecure://127.0.0.1:1143"
pop3 = "pop3://127.0.0.1"
smtp = "smtps://localhost:4650"
graph = "http://127.0.0.1:8444"
ca_file = "ca.pem"
sasl = "xoauth2"`, &Account{
			Provider: Microsoft, ClientID: "x", Flow: FlowDevice, Scopes: []string{"imap", "smtp", "offline_access"},
			Tenant: guid, Cloud: "global", Authority: "https://127.0.0.1:8443", RedirectURI: "http://127.0.0.1", SASL: "xoauth2",
			IMAP:   srv("imap", "imap+insecure://127.0.0.1:1143", SecurityNone, "127.0.0.1", 1143),
			POP3:   srv("pop3", "pop3://127.0.0.1:110", SecurityStartTLS, "127.0.0.1", 110),
			SMTP:   srv("smtp", "smtps://localhost:4650", SecurityTLS, "localhost", 4650),
			Graph:  "http://127.0.0.1:8444",
			CAFile: "ca.pem",
		}},
		{"google", `[accounts.g]
provider = "google"
client_id = "x.apps.googleusercontent.com"
client_secret = "env:G"
email = "bob@gmail.com"`, &Account{
			Provider: Google, ClientID: "x.apps.googleusercontent.com", Flow: FlowAuthCode, Scopes: []string{"imap", "smtp", "offline_access"},
			Email: "bob@gmail.com", RedirectURI: "http://127.0.0.1", SASL: "auto", AuthMethod: "client_secret_post",
			IMAP: srv("imap", "imaps://imap.gmail.com:993", SecurityTLS, "imap.gmail.com", 993),
			POP3: srv("pop3", "pop3s://pop.gmail.com:995", SecurityTLS, "pop.gmail.com", 995),
			SMTP: srv("smtp", "smtp://smtp.gmail.com:587", SecurityStartTLS, "smtp.gmail.com", 587),
		}},
		{"oidc", `[accounts.o]
provider = "oidc"
client_id = "x"
client_secret = "env:O"
issuer = "http://127.0.0.1:9000/"
scopes = ["openid", "mail"]
redirect_uri = "http://127.0.0.1:9999/callback"
imap = "imaps://127.0.0.1:9993"`, &Account{
			Provider: OIDC, ClientID: "x", Flow: FlowAuthCode, Scopes: []string{"openid", "mail"}, Issuer: "http://127.0.0.1:9000",
			RedirectURI: "http://127.0.0.1:9999/callback", SASL: "auto", AuthMethod: "", // automatic: the server's metadata decides
			IMAP: srv("imap", "imaps://127.0.0.1:9993", SecurityTLS, "127.0.0.1", 9993),
		}},
		{"oidc with certificate, explicit ES384 and auth_method", `[accounts.o]
provider = "oidc"
client_id = "x"
certificate = "app.pem"
assertion_alg = "ES384"
issuer = "http://127.0.0.1:9000/"
scopes = ["mail"]`, &Account{
			Provider: OIDC, ClientID: "x", Flow: FlowAuthCode, Scopes: []string{"mail"}, Issuer: "http://127.0.0.1:9000",
			RedirectURI: "http://127.0.0.1", SASL: "auto", AssertionAlg: "ES384",
		}},
		{"oidc with explicit client_secret_basic", `[accounts.o]
provider = "oidc"
client_id = "x"
client_secret = "env:O"
auth_method = "client_secret_basic"
issuer = "http://127.0.0.1:9000/"
scopes = ["mail"]`, &Account{
			Provider: OIDC, ClientID: "x", Flow: FlowAuthCode, Scopes: []string{"mail"}, Issuer: "http://127.0.0.1:9000",
			RedirectURI: "http://127.0.0.1", SASL: "auto", AuthMethod: "client_secret_basic",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup(t)
			cfg, err := parse(t, dir, tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			names := cfg.AccountNames()
			if len(names) != 1 {
				t.Fatalf("accounts = %v", names)
			}
			got := cfg.Accounts[names[0]]
			tt.want.Name = names[0]
			if tt.want.CAFile != "" {
				tt.want.CAFile = filepath.Join(dir, tt.want.CAFile)
			}
			if got.Certificate != "" {
				if got.Certificate != filepath.Join(dir, "app.pem") {
					t.Errorf("certificate = %q, want it resolved against %s", got.Certificate, dir)
				}
				got.Certificate = ""
			}
			opt := cmp.Comparer(func(a, b Secret) bool { return true })
			if diff := cmp.Diff(tt.want, got, opt); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestTopLevelDefaults(t *testing.T) {
	dir := setup(t)
	state := os.Getenv("MAILOAUTH_STATE_DIR")
	cfg, err := parse(t, dir, `
[accounts.w]
client_id = "x"
email = "w@contoso.com"
[proxy.imap]
accounts = ["w"]
tls_cert = "proxy.pem"
[proxy.smtp]
listen = "127.0.0.1:2587"
accounts = ["w"]
upstream = "smtp+insecure://127.0.0.1:2525"
tls = "starttls"
max_connections = 10
max_connections_per_account = 2
idle_timeout = "90s"
`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite:" + filepath.Join(state, "tokens.db"); cfg.Store != want {
		t.Errorf("store = %q, want %q", cfg.Store, want)
	}
	if want := filepath.Join(state, "daemon.sock"); cfg.Serve.Socket != want {
		t.Errorf("socket = %q, want %q", cfg.Serve.Socket, want)
	}
	want := map[string]*Proxy{
		"imap": {Protocol: "imap", Listen: "127.0.0.1:1993", Accounts: []string{"w"}, TLS: "none", TLSCert: filepath.Join(dir, "proxy.pem"),
			MaxConnections: DefaultMaxConnections, IdleTimeout: DefaultIdleTimeout},
		"smtp": {Protocol: "smtp", Listen: "127.0.0.1:2587", Accounts: []string{"w"}, TLS: "starttls",
			Upstream:       &Server{URL: "smtp+insecure://127.0.0.1:2525", Protocol: "smtp", Security: SecurityNone, Host: "127.0.0.1", Port: 2525},
			MaxConnections: 10, MaxConnectionsPerAccount: 2, IdleTimeout: 90 * time.Second},
	}
	if diff := cmp.Diff(want, cfg.Proxies); diff != "" {
		t.Errorf("proxies (-want +got)\n%s", diff)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
}

func TestStoreURLs(t *testing.T) {
	tests := []struct{ in, want, warn string }{
		{"sqlite:", "sqlite:{state}/tokens.db", ""},
		{"sqlite:mine.db", "sqlite:{state}/mine.db", ""},
		{"sqlite:/var/lib/m/t.db", "sqlite:/var/lib/m/t.db", ""},
		{"postgres://m@127.0.0.1/mailoauth", "postgres://m@127.0.0.1/mailoauth", ""},
		{"postgres://m:hunter2@127.0.0.1/mailoauth", "postgres://m:hunter2@127.0.0.1/mailoauth", "PGPASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			dir := setup(t)
			cfg, err := parse(t, dir, fmt.Sprintf("store = %q\n", tt.in))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tt.want, "{state}", os.Getenv("MAILOAUTH_STATE_DIR"))
			if cfg.Store != want {
				t.Errorf("store = %q, want %q", cfg.Store, want)
			}
			var warns []string
			for _, w := range cfg.Warnings {
				warns = append(warns, w.String())
				if strings.Contains(w.Msg, "hunter2") {
					t.Errorf("warning leaks the password: %s", w)
				}
			}
			if (tt.warn != "") != (len(warns) == 1) || (tt.warn != "" && !strings.Contains(warns[0], tt.warn)) {
				t.Errorf("warnings = %q, want one containing %q", warns, tt.warn)
			}
		})
	}
}

// TestWarnings: literal secrets and risky choices load, with a warning that
// names the key and never the value.
func TestWarnings(t *testing.T) {
	dir := setup(t)
	cfg, err := parse(t, dir, `[accounts.a]
client_id = "x"
client_secret = "s3cr3t-literal"
[accounts.b]
client_id = "y"
tenant = "contoso.com"
flow = "password"
email = "b@contoso.com"
password = "pw-literal"
[proxy.imap]
listen = "0.0.0.0:1993"
accounts = ["b"]
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, fmt.Sprintf("%d %s", w.Line, w.Key))
		if strings.Contains(w.String(), "s3cr3t") || strings.Contains(w.String(), "pw-literal") {
			t.Errorf("warning leaks a secret: %s", w)
		}
	}
	want := []string{"3 accounts.a.client_secret", "7 accounts.b.flow", "9 accounts.b.password", "10 proxy.imap.tls", "11 proxy.imap.listen"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if !strings.Contains(cfg.Warnings[0].Msg, "prefer env:VAR") {
		t.Errorf("literal warning = %q", cfg.Warnings[0].Msg)
	}
	if s := cfg.Accounts["a"].ClientSecret; s.Kind() != SecretLiteral || s.String() != "literal" {
		t.Errorf("literal secret: kind %q, string %q", s.Kind(), s.String())
	}
}

// TestLiteralSecretFileMode: a literal secret in a file other users can read
// earns the chmod that fixes it; in a private file, only the advice.
func TestLiteralSecretFileMode(t *testing.T) {
	dir := setup(t)
	file := filepath.Join(dir, "config.toml")
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" = no chmod advice
	}{
		{0o644, "the file is open to other users (mode 0644): chmod 600 " + file},
		{0o640, "(mode 0640): chmod 600"},
		{0o600, ""},
	} {
		if err := os.WriteFile(file, []byte("[accounts.a]\nclient_id = \"x\"\nclient_secret = \"lit\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, tc.mode); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		msg := cfg.Warnings[0].Msg
		if tc.want == "" && strings.Contains(msg, "chmod") || tc.want != "" && !strings.Contains(msg, tc.want) {
			t.Errorf("mode %04o: warning %q, want %q", tc.mode, msg, tc.want)
		}
	}
}

func TestAccountLookup(t *testing.T) {
	dir := setup(t)
	cfg, err := parse(t, dir, "[accounts.work]\nclient_id = \"x\"\n[accounts.home]\nclient_id = \"y\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := cfg.Account("work"); err != nil || a.ClientID != "x" {
		t.Fatalf("Account(work) = %v, %v", a, err)
	}
	_, err = cfg.Account("wrok")
	if !errors.Is(err, ErrNoAccount) || !strings.Contains(err.Error(), "known accounts: home, work") {
		t.Errorf("Account(wrok) error = %v", err)
	}
	empty, err := parse(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Account("x"); err == nil || !strings.Contains(err.Error(), "defines no accounts") {
		t.Errorf("empty config: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
}

// FuzzParse: the config parser (and its key scanner) sees whatever the user
// wrote; it must end and never panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a = 1", "[a]\nb = [\n{c = 'x'}]", `k = """x`, "[[x]]\ny = {z = 1,", "'", "\"\\", "a.\"b\\u00e9\" = 1",
		"[accounts.a]\nclient_id = \"x\"\nflwo = 1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		Parse("/fuzz/config.toml", []byte(s)) //nolint:errcheck // only must not panic
	})
}

// TestREADMEExample keeps the README's example config valid: it is parsed
// as documented, with the files it names present.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip("README.md not found:", err)
	}
	s := string(readme)
	i := strings.Index(s, "### Example")
	if i < 0 {
		t.Fatal("README has no ### Example section")
	}
	start := strings.Index(s[i:], "```toml\n")
	if start < 0 {
		t.Fatal("README example has no toml block")
	}
	body := s[i+start+len("```toml\n"):]
	doc := body[:strings.Index(body, "```")]
	dir := setup(t)
	if err := os.WriteFile(filepath.Join(dir, "robot.pfx"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The example trusts the emulator's CA at /tmp/mailoauth-ca.pem; point
	// it at a file of this test instead.
	doc = strings.ReplaceAll(doc, "/tmp/mailoauth-ca.pem", "ca.pem")
	cfg, err := parse(t, dir, doc)
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("README example warns: %v", cfg.Warnings)
	}
	if diff := cmp.Diff([]string{"emulated", "gmail", "robot", "work"}, cfg.AccountNames()); diff != "" {
		t.Errorf("accounts (-want +got)\n%s", diff)
	}
}

// TestFixedContractKeys guards the account keys the foundation issue fixes
// as a contract: each is a key of [accounts.NAME], and the README's first
// account table documents exactly these, in this order.
func TestFixedContractKeys(t *testing.T) {
	contract := []string{"provider", "client_id", "client_secret", "certificate", "certificate_password", "flow", "scopes",
		"email", "tenant", "cloud", "authority", "issuer", "redirect_uri", "imap", "pop3", "smtp", "graph", "ca_file"}
	tags := map[string]bool{}
	rt := reflect.TypeFor[rawAccount]()
	for i := range rt.NumField() {
		tags[rt.Field(i).Tag.Get("toml")] = true
	}
	for _, k := range contract {
		if !tags[k] {
			t.Errorf("contract key %q is not an account key", k)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip("README.md not found:", err)
	}
	s := string(readme)
	i := strings.Index(s, "### Accounts: `[accounts.NAME]`")
	j := strings.Index(s, "Keys added for later features:")
	if i < 0 || j < i {
		t.Fatal("README has no account key tables")
	}
	var documented []string
	for line := range strings.Lines(s[i:j]) {
		if k, ok := strings.CutPrefix(line, "| `"); ok {
			documented = append(documented, k[:strings.Index(k, "`")])
		}
	}
	if diff := cmp.Diff(contract, documented); diff != "" {
		t.Errorf("README's fixed-contract table (-want +got)\n%s", diff)
	}
	// Every other account key is in the README's second table.
	k := strings.Index(s[j:], "Rules checked when the file is read")
	if k < 0 {
		t.Fatal("README's account tables do not end as expected")
	}
	for line := range strings.Lines(s[j : j+k]) {
		if k, ok := strings.CutPrefix(line, "| `"); ok {
			documented = append(documented, k[:strings.Index(k, "`")])
		}
	}
	var all []string
	for tag := range tags {
		all = append(all, tag)
	}
	slices.Sort(all)
	slices.Sort(documented)
	if diff := cmp.Diff(all, documented); diff != "" {
		t.Errorf("account keys documented in the README (-want +got)\n%s", diff)
	}
}

// TestParseServer: the schemes and rules are mailclient.ParseURL's, the
// messages name the config file's fix.
func TestParseServer(t *testing.T) {
	tests := []struct {
		proto, in string
		want      *Server
		wantErr   string
	}{
		{proto: "imap", in: "imaps://mail.example.com", want: &Server{URL: "imaps://mail.example.com:993", Protocol: "imap", Security: SecurityTLS, Host: "mail.example.com", Port: 993}},
		{proto: "smtp", in: "SMTP://smtp.example.com/", want: &Server{URL: "smtp://smtp.example.com:587", Protocol: "smtp", Security: SecurityStartTLS, Host: "smtp.example.com", Port: 587}},
		{proto: "pop3", in: "pop3+insecure://[::1]:1100", want: &Server{URL: "pop3+insecure://[::1]:1100", Protocol: "pop3", Security: SecurityNone, Host: "::1", Port: 1100}},
		{proto: "smtp", in: "imaps://smtp.example.com", wantErr: `scheme "imaps": use smtps:// (TLS), smtp:// (STARTTLS, required) or smtp+insecure:// (plain text, loopback only)`},
		{proto: "imap", in: "https://mail.example.com", wantErr: `scheme "https": use imaps://`},
		{proto: "imap", in: "imaps://u@mail.example.com", wantErr: `"imaps://u@mail.example.com": give only scheme://host[:port]`},
		{proto: "imap", in: "imaps://mail.example.com:0", wantErr: `invalid port "0"`},
		{proto: "pop3", in: "pop3+insecure://mail.example.com", wantErr: "pop3+insecure:// sends the token in plain text and is allowed for loopback hosts only, not mail.example.com"},
		{proto: "imap", in: "imaps://", wantErr: `"imaps://" is not a URL such as imaps://host:port`},
		{proto: "imap", in: "imaps://bad host", wantErr: "is not a URL such as imaps://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseServer(tt.proto, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
