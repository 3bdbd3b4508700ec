package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/provider"
)

// fakeAuthServer plays an authorization server: /authorize redirects at
// once to redirect_uri with a code (or with redirectWith), and the token
// endpoint checks the PKCE verifier against the challenge it saw.
type fakeAuthServer struct {
	t            *testing.T
	redirectWith func(q url.Values) url.Values // nil = success

	mu        sync.Mutex
	authPath  string
	authQuery url.Values
	tokenForm url.Values
}

func (f *fakeAuthServer) handle(w http.ResponseWriter, s seen) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case s.Method == "GET":
		f.authQuery = s.Form // filled below from the URL
	default:
		f.tokenForm = s.Form
		sum := sha256.Sum256([]byte(s.Form.Get("code_verifier")))
		if s.Form.Get("code") != "the-code" || base64.RawURLEncoding.EncodeToString(sum[:]) != f.authQuery.Get("code_challenge") {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_codes": []int{501481}})
			return
		}
		writeJSON(w, 200, tokenJSON("user-at", "user-rt"))
	}
}

func newFakeAuthServer(t *testing.T, kind provider.Kind) (*fakeAuthServer, *Client) {
	f := &fakeAuthServer{t: t}
	p, srv := fakeServerHandler(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && (strings.HasSuffix(r.URL.Path, "/authorize") || strings.HasSuffix(r.URL.Path, "/auth") || strings.Contains(r.URL.Path, "adminconsent")) {
			q := r.URL.Query()
			f.mu.Lock()
			f.authQuery, f.authPath = q, r.URL.Path
			with := f.redirectWith
			f.mu.Unlock()
			back := url.Values{"code": {"the-code"}, "state": {q.Get("state")}}
			if with != nil {
				back = with(q)
			}
			http.Redirect(w, r, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
			return
		}
		r.ParseForm()
		f.handle(w, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header, Form: r.PostForm})
	}))
	return f, &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid"}
}

// fakeBrowser follows the sign-in like a user's browser and keeps the
// final page.
type fakeBrowser struct {
	page   chan string
	status chan int
}

func newFakeBrowser() *fakeBrowser {
	return &fakeBrowser{page: make(chan string, 1), status: make(chan int, 1)}
}

func (b *fakeBrowser) Open(u string) error {
	go func() {
		resp, err := http.Get(u)
		if err != nil {
			b.page <- "error: " + err.Error()
			b.status <- 0
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		b.page <- string(body)
		b.status <- resp.StatusCode
	}()
	return nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestLoginLoopback(t *testing.T) {
	port := freePort(t)
	tests := []struct {
		name         string
		redirect     string
		wantRedirect string // "" = free port on 127.0.0.1, path /
	}{
		{"default free port", "", ""},
		{"path without port", "http://127.0.0.1/testApp/", ""},
		{"fixed localhost port and path", "http://localhost:" + strconv.Itoa(port) + "/Callback", "http://localhost:" + strconv.Itoa(port) + "/Callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakeAuthServer(t, provider.KindMicrosoft)
			b := newFakeBrowser()
			var shown string
			scopes := []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://graph.microsoft.com/Mail.Send", "offline_access"}
			tok, err := c.Login(context.Background(), LoginOptions{RedirectURI: tt.redirect, Scopes: scopes,
				Auth: AuthOptions{LoginHint: "user@contoso.com"}, Interaction: Interaction{Browser: b, ShowURL: func(u string) { shown = u }}})
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "user-at" || tok.RefreshToken != "user-rt" {
				t.Errorf("token = %+v", tok)
			}
			if page := <-b.page; !strings.Contains(page, "Signed in") {
				t.Errorf("browser page = %s", page)
			}
			if !strings.HasPrefix(shown, c.Provider.Endpoints.AuthURL+"?") {
				t.Errorf("shown URL = %q", shown)
			}
			q := f.authQuery
			redirect := q.Get("redirect_uri")
			if tt.wantRedirect != "" && redirect != tt.wantRedirect {
				t.Errorf("redirect_uri = %q, want %q", redirect, tt.wantRedirect)
			}
			if tt.wantRedirect == "" && !strings.HasPrefix(redirect, "http://127.0.0.1:") {
				t.Errorf("redirect_uri = %q, want 127.0.0.1 with a port", redirect)
			}
			if tt.redirect == "http://127.0.0.1/testApp/" && !strings.HasSuffix(redirect, "/testApp/") {
				t.Errorf("redirect_uri = %q lost its path", redirect)
			}
			for k, want := range map[string]string{"response_type": "code", "client_id": "cid", "code_challenge_method": "S256",
				"scope": strings.Join(scopes, " "), "login_hint": "user@contoso.com"} {
				if got := q.Get(k); got != want {
					t.Errorf("authorize %s = %q, want %q", k, got, want)
				}
			}
			if len(q.Get("state")) < 16 || len(q.Get("code_challenge")) != 43 {
				t.Errorf("state %q / challenge %q too short", q.Get("state"), q.Get("code_challenge"))
			}
			// One resource per token request: the code is redeemed for
			// Exchange only; Graph comes from a refresh.
			want := url.Values{"grant_type": {"authorization_code"}, "code": {"the-code"}, "redirect_uri": {redirect}, "client_id": {"cid"},
				"code_verifier": {f.tokenForm.Get("code_verifier")}, "scope": {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}}
			if diff := cmp.Diff(want, f.tokenForm); diff != "" {
				t.Errorf("token request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoginRedirectErrors(t *testing.T) {
	tests := []struct {
		name     string
		with     func(q url.Values) url.Values
		wantIs   error
		wantPage string
	}{
		{"user declined", func(q url.Values) url.Values {
			return url.Values{"error": {"access_denied"}, "error_description": {"AADSTS65004: User declined to consent to access the app."}, "state": {q.Get("state")}}
		}, ErrAccessDenied, "consent was declined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakeAuthServer(t, provider.KindMicrosoft)
			f.redirectWith = tt.with
			b := newFakeBrowser()
			_, err := c.Login(context.Background(), LoginOptions{Scopes: []string{"openid"}, Interaction: Interaction{Browser: b}})
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
			page := <-b.page
			if !strings.Contains(page, "Sign-in failed") || !strings.Contains(page, tt.wantPage) || <-b.status != 400 {
				t.Errorf("failure page = %s", page)
			}
			if f.tokenForm != nil {
				t.Error("the code was redeemed")
			}
		})
	}
}

// TestLoginIgnoresForeignState: a redirect with another state (a stale
// tab, a forged request) gets a failure page and no redemption, and the
// listener keeps waiting for this sign-in's redirect, which then succeeds.
func TestLoginIgnoresForeignState(t *testing.T) {
	f, c := newFakeAuthServer(t, provider.KindMicrosoft)
	f.redirectWith = func(url.Values) url.Values { return url.Values{"code": {"stolen-code"}, "state": {"attacker"}} }
	b := newFakeBrowser()
	type result struct {
		tok *Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := c.Login(context.Background(), LoginOptions{Scopes: []string{"openid"}, Interaction: Interaction{Browser: b, Timeout: 30 * time.Second}})
		done <- result{tok, err}
	}()
	page := <-b.page
	if !strings.Contains(page, "Not this sign-in") || !strings.Contains(page, "state does not match") || <-b.status != 400 {
		t.Errorf("page for a foreign state = %s", page)
	}
	f.mu.Lock()
	q, redeemed := f.authQuery, f.tokenForm != nil
	f.mu.Unlock()
	if redeemed {
		t.Error("the foreign code was redeemed")
	}
	resp, err := http.Get(q.Get("redirect_uri") + "?" + url.Values{"code": {"the-code"}, "state": {q.Get("state")}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("this sign-in's redirect: status %d", resp.StatusCode)
	}
	r := <-done
	if r.err != nil || r.tok.AccessToken != "user-at" {
		t.Fatalf("login = %v, %v", r.tok, r.err)
	}
}

func TestLoginPasteFallback(t *testing.T) {
	f, c := newFakeAuthServer(t, provider.KindGoogle)
	pr, pw := io.Pipe()
	defer pw.Close()
	var notes []string
	var mu sync.Mutex
	shown := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		tok, err := c.Login(context.Background(), LoginOptions{
			RedirectURI: "https://app.example.com/oauth/callback", Scopes: []string{provider.GoogleMailScope},
			Interaction: Interaction{NoBrowser: true, Paste: pr, ShowURL: func(u string) { shown <- u },
				Notify: func(m string) { mu.Lock(); notes = append(notes, m); mu.Unlock() }},
		})
		if err == nil && tok.AccessToken != "user-at" {
			err = errors.New("wrong token")
		}
		done <- err
	}()
	u, _ := url.Parse(<-shown)
	q := u.Query()
	f.mu.Lock()
	f.authQuery = q // the user's browser went there on another machine
	f.mu.Unlock()
	if q.Get("access_type") != "offline" {
		t.Errorf("google authorize lacks access_type=offline: %v", q)
	}
	io.WriteString(pw, "not a url\n")
	io.WriteString(pw, "https://app.example.com/oauth/callback?state=OLDATTEMPT&code=stale-code\n")
	io.WriteString(pw, "  \"https://app.example.com/oauth/callback?state="+q.Get("state")+"&code=the-code&scope=https://mail.google.com/\"  \n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 2 || !strings.Contains(notes[0], "paste the full address again") || !strings.Contains(notes[1], "belongs to another sign-in") || strings.Contains(notes[1], "stale-code") {
		t.Errorf("notes = %q", notes)
	}
}

func TestLoginTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := provider.Google()
		c := &Client{HTTP: &http.Client{Transport: handlerTransport{http.NotFoundHandler()}}, Provider: p, ClientID: "cid"}
		pr, pw := io.Pipe()
		defer pw.Close()
		start := time.Now()
		_, err := c.Login(t.Context(), LoginOptions{RedirectURI: "https://app.example.com/cb", Scopes: []string{"email"},
			Interaction: Interaction{NoBrowser: true, Paste: pr, Timeout: 2 * time.Minute}})
		if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "within 2m0s") {
			t.Fatalf("err = %v", err)
		}
		if got := time.Since(start); got != 2*time.Minute {
			t.Errorf("gave up after %v", got)
		}
	})
}

func TestLoginNeedsPasteForRemoteRedirect(t *testing.T) {
	c := &Client{Provider: provider.Google(), ClientID: "cid"}
	_, err := c.Login(context.Background(), LoginOptions{RedirectURI: "https://app.example.com/cb", Interaction: Interaction{NoBrowser: true}})
	if err == nil || !strings.Contains(err.Error(), "paste") {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Login(context.Background(), LoginOptions{RedirectURI: "http://[::1]:8400/", Interaction: Interaction{NoBrowser: true}})
	if err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Fatalf("err = %v", err)
	}
}

func TestWebAppExchange(t *testing.T) {
	rec, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) { writeJSON(w, 200, tokenJSON("web-at", "web-rt")) })
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid", Auth: ClientSecret{Secret: "web-secret"}}
	ar, err := c.AuthCodeURL("https://deskpro.example.com/oauth/callback", []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"}, AuthOptions{Prompt: "select_account"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ar.String(), ar.Verifier) {
		t.Error("String() shows the verifier")
	}
	code, err := ar.ParseRedirect("https://deskpro.example.com/oauth/callback?code=web-code&state=" + ar.State + "&session_state=x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(context.Background(), ar, code); err != nil {
		t.Fatal(err)
	}
	form := rec.all()[0].Form
	if form.Get("client_secret") != "web-secret" || form.Get("code") != "web-code" || form.Get("code_verifier") != ar.Verifier || form.Get("redirect_uri") != ar.RedirectURI {
		t.Errorf("form = %v", form)
	}
}

func TestRedirectQuery(t *testing.T) {
	tests := []struct {
		in, wantCode, wantErr string
	}{
		{"http://127.0.0.1:8400/?code=abc&state=S", "abc", ""},
		{"http://localhost/cb#code=abc&state=S", "abc", ""},
		{"?code=abc&state=S", "abc", ""},
		{"code=abc&state=S", "abc", ""},
		{"<http://localhost/?state=S&code=a%2Bb>", "a+b", ""},
		{"http://localhost/?state=S&error=access_denied&error_description=no", "", "access_denied"},
		{"http://localhost/?code=abc&state=T", "", "state does not match"},
		{"http://localhost/?foo=bar", "", "no code or error"},
		{"", "", "nothing pasted"},
		{"http://[bad", "", "not a URL"},
	}
	ar := &AuthRequest{State: "S"}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			code, err := ar.ParseRedirect(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || code != tt.wantCode {
				t.Fatalf("code, err = %q, %v; want %q", code, err, tt.wantCode)
			}
		})
	}
}

func FuzzRedirectParsing(f *testing.F) {
	f.Add("http://127.0.0.1:8400/?code=abc&state=S")
	f.Add("https://app/cb#error=x&error_description=AADSTS50011%3A+bad&state=S")
	f.Add("?admin_consent=True&tenant=t&scope=a+b&state=S")
	f.Add("code=%zz&state=S")
	f.Fuzz(func(t *testing.T, s string) {
		ar := &AuthRequest{State: "S"}
		code, err := ar.ParseRedirect(s)
		if err == nil && code == "" {
			t.Fatal("success without a code")
		}
		if err != nil && code != "" {
			t.Fatal("code returned with an error")
		}
		if q, err := RedirectQuery(s); err == nil {
			if q.Get("state") != "S" {
				if _, err := ar.CodeFromQuery(q); !errors.Is(err, ErrStateMismatch) {
					t.Fatalf("wrong state accepted: %v", err)
				}
				if _, err := ParseAdminConsent(q, "S"); !errors.Is(err, ErrStateMismatch) {
					t.Fatalf("wrong admin consent state accepted: %v", err)
				}
			}
			if r, err := ParseAdminConsent(q, "S"); err == nil && r.Tenant == "" {
				t.Fatal("admin consent without tenant")
			}
		}
	})
}
