package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"golang.org/x/oauth2"
)

// The cached path, side by side with golang.org/x/oauth2's ReuseTokenSource
// and MSAL Go's AcquireTokenSilent holding the same valid token:
//
//	go test -run '^$' -bench Cached -benchmem ./tokens/

func BenchmarkCachedSource(b *testing.B) {
	s, err := Open(b.Context(), "mem:", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := SaveLogin(b.Context(), s, "work", "imap", loginToken("rt", "at-cached", time.Now().Add(time.Hour))); err != nil {
		b.Fatal(err)
	}
	src, err := NewSource(Config{Store: s, Refresher: newFakeServer(), Account: "work", Resource: "imap", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := src.Token(); err != nil { // load into the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCachedOAuth2Reuse(b *testing.B) {
	tok := &oauth2.Token{AccessToken: "at-cached", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	ts := oauth2.ReuseTokenSource(tok, failingTokenSource{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

type failingTokenSource struct{}

func (failingTokenSource) Token() (*oauth2.Token, error) {
	return nil, errors.New("no refresh in a benchmark")
}

func BenchmarkCachedMSAL(b *testing.B) {
	const (
		clientID = "00000000-0000-0000-0000-0000000000c1"
		tenant   = "00000000-0000-0000-0000-00000000007e"
		uid      = "00000000-0000-0000-0000-0000000000a1"
		env      = "login.microsoftonline.com"
		scope    = "https://outlook.office.com/IMAP.AccessAsUser.All"
	)
	home := uid + "." + tenant
	now := time.Now()
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	// MSAL's cache format (apps/internal/base/storage/items.go), seeded
	// through the documented cache.ExportReplace hook.
	blob := fmt.Sprintf(`{
"AccessToken": {"%[1]s-%[2]s-accesstoken-%[3]s-%[4]s-%[5]s": {"home_account_id": "%[1]s", "environment": "%[2]s", "realm": "%[4]s",
	"credential_type": "AccessToken", "client_id": "%[3]s", "secret": "at-cached", "target": "%[5]s",
	"cached_at": "%[6]s", "expires_on": "%[7]s", "extended_expires_on": "%[7]s", "token_type": "Bearer"}},
"RefreshToken": {"%[1]s-%[2]s-refreshtoken-%[3]s--": {"home_account_id": "%[1]s", "environment": "%[2]s",
	"credential_type": "RefreshToken", "client_id": "%[3]s", "secret": "rt"}},
"Account": {"%[1]s-%[2]s-%[4]s": {"home_account_id": "%[1]s", "environment": "%[2]s", "realm": "%[4]s",
	"local_account_id": "%[8]s", "authority_type": "MSSTS", "username": "user@example.com"}},
"AppMetadata": {"appmetadata-%[2]s-%[3]s": {"client_id": "%[3]s", "environment": "%[2]s"}}
}`, home, env, clientID, tenant, scope, unix(now), unix(now.Add(time.Hour)), uid)
	c := &seededCache{blob: []byte(blob)}
	app, err := public.New(clientID,
		public.WithAuthority("https://"+env+"/"+tenant),
		public.WithCache(c),
		public.WithInstanceDiscovery(false),
		public.WithHTTPClient(&http.Client{Transport: noNetwork{}}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	accts, err := app.Accounts(ctx)
	if err != nil || len(accts) != 1 {
		b.Fatalf("MSAL accounts = %v, %v", accts, err)
	}
	res, err := app.AcquireTokenSilent(ctx, []string{scope}, public.WithSilentAccount(accts[0]))
	if err != nil || res.AccessToken != "at-cached" {
		b.Fatalf("MSAL silent: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := app.AcquireTokenSilent(ctx, []string{scope}, public.WithSilentAccount(accts[0])); err != nil {
			b.Fatal(err)
		}
	}
}

// seededCache loads blob into MSAL once and then keeps MSAL's in-memory
// cache as it is: MSAL's best case (a persistent cache would re-read it on
// every call).
type seededCache struct {
	blob   []byte
	loaded bool
}

func (c *seededCache) Replace(ctx context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	if c.loaded {
		return nil
	}
	c.loaded = true
	return u.Unmarshal(c.blob)
}

func (c *seededCache) Export(context.Context, cache.Marshaler, cache.ExportHints) error { return nil }

// noNetwork fails every request: the benchmark must hit MSAL's cache only.
type noNetwork struct{}

func (noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("benchmark made a network request to %s", r.URL.Host)
}
