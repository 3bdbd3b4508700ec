package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/tokens"
)

func (e *emuEnv) token(args ...string) string {
	e.t.Helper()
	r := e.exec(nil, nil, append([]string{"token"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("token %v: exit %d\nstderr: %s", args, r.code, r.err)
	}
	return strings.TrimSpace(r.out)
}

// expireLocally makes the stored access token of resource look expired, as
// if time had passed (the engine decides from the stored expiry).
func (e *emuEnv) expireLocally(account, resource string) string {
	e.t.Helper()
	ctx := context.Background()
	st := e.store()
	tok, err := tokens.LoadToken(ctx, st, account, tokens.AccessKind(resource))
	if err != nil {
		e.t.Fatal(err)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	if err := st.Put(ctx, nil, tokens.TokenRecord(account, tokens.AccessKind(resource), tok)); err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

// TestTokenResources: one login, then IMAP and SMTP share the Exchange token
// without any request, and Graph costs exactly one refresh of the same
// refresh token.
func TestTokenResources(t *testing.T) {
	e := newEmuEnv(t)
	e.login("dev")
	e.srv.ResetCounts()

	imap := e.token("dev")
	smtp := e.token("dev", "--resource", "smtp")
	if imap != smtp {
		t.Errorf("imap and smtp tokens differ: the Exchange token should serve both")
	}
	if n := e.srv.Counts()["token"]; n != 0 {
		t.Errorf("cached token: %d token endpoint calls, want 0", n)
	}
	graph := e.token("dev", "--resource", "graph")
	again := e.token("dev", "--resource", "graph")
	if graph != again {
		t.Errorf("second graph token differs: not cached")
	}
	counts := e.srv.Counts()
	if counts["token"] != 1 || counts["token:refresh_token"] != 1 {
		t.Errorf("counts %v: want exactly one refresh for graph", counts)
	}
	ex, _ := e.srv.Lookup(imap)
	gr, _ := e.srv.Lookup(graph)
	got := []string{ex.Audience, gr.Audience, ex.UPN, gr.UPN}
	want := []string{"https://outlook.office.com", "https://graph.microsoft.com", "alice@contoso.com", "alice@contoso.com"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audiences and users (-want +got)\n%s", diff)
	}

	t.Run("json", func(t *testing.T) {
		e := e.with(t)
		var tj tokenJSON
		if err := json.Unmarshal([]byte(e.token("dev", "--json")), &tj); err != nil {
			t.Fatal(err)
		}
		if tj.AccessToken != imap || tj.Account != "dev" || tj.Expiry.IsZero() || len(tj.Scopes) == 0 {
			t.Errorf("token --json = %+v", tj)
		}
	})
	t.Run("sasl", func(t *testing.T) {
		e := e.with(t)
		for mech, want := range map[string]string{
			"xoauth2":     "user=alice@contoso.com\x01auth=Bearer " + imap + "\x01\x01",
			"oauthbearer": "n,a=alice@contoso.com,\x01auth=Bearer " + imap + "\x01\x01",
		} {
			raw, err := base64.StdEncoding.DecodeString(e.token("dev", "--sasl", mech))
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != want {
				t.Errorf("%s: got %q, want %q", mech, raw, want)
			}
		}
	})
	t.Run("refresh after expiry", func(t *testing.T) {
		e := e.with(t)
		old := e.expireLocally("dev", "exchange")
		if err := e.srv.ExpireToken(old); err != nil {
			t.Fatal(err)
		}
		e.srv.ResetCounts()
		fresh := e.token("dev")
		if fresh == old {
			t.Fatal("the expired token was handed out")
		}
		if at, ok := e.srv.Lookup(fresh); !ok || !at.ActiveAt(time.Now()) {
			t.Errorf("new token not active at the emulator")
		}
		if n := e.srv.Counts()["token:refresh_token"]; n != 1 {
			t.Errorf("refreshes = %d, want 1", n)
		}
	})
	t.Run("revoked refresh token", func(t *testing.T) {
		e := e.with(t)
		if err := e.srv.RevokeUserSessions("alice@contoso.com"); err != nil {
			t.Fatal(err)
		}
		e.expireLocally("dev", "exchange")
		r := e.exec(nil, nil, "token", "dev")
		if r.code != ExitRelogin || !strings.Contains(r.err, "mailoauth login dev") || r.out != "" {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.out, r.err)
		}
		// The state is shared: the next call fails fast, without a request.
		e.srv.ResetCounts()
		e.expireLocally("dev", "graph")
		r = e.exec(nil, nil, "token", "dev", "--resource", "graph")
		if r.code != ExitRelogin || e.srv.Counts()["token"] != 0 {
			t.Errorf("after relogin mark: exit %d, token calls %d", r.code, e.srv.Counts()["token"])
		}
	})
}

func TestTokenNotLoggedIn(t *testing.T) {
	e := newEmuEnv(t)
	r := e.exec(nil, nil, "token", "dev")
	if r.code != ExitRelogin || !strings.Contains(r.err, "run: mailoauth login dev") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
	r = e.exec(nil, nil, "token", "nope")
	if r.code != ExitConfig || !strings.Contains(r.err, "known accounts") {
		t.Errorf("unknown account: exit %d, stderr:\n%s", r.code, r.err)
	}
}

func TestStatusLogout(t *testing.T) {
	e := newEmuEnv(t)
	e.login("dev")
	status := func() map[string]account.Status {
		t.Helper()
		r := e.exec(nil, nil, "status", "--json")
		if r.code != 0 {
			t.Fatalf("status: exit %d\n%s", r.code, r.err)
		}
		var list []account.Status
		if err := json.Unmarshal([]byte(r.out), &list); err != nil {
			t.Fatalf("%v\n%s", err, r.out)
		}
		m := map[string]account.Status{}
		for _, s := range list {
			m[s.Account] = s
		}
		return m
	}
	st := status()
	dev := st["dev"]
	if !dev.LoggedIn || dev.Health != account.HealthOK || len(dev.Access) != 1 || dev.Access[0].Resource != "exchange" ||
		!dev.Access[0].Valid || dev.LastRefresh.IsZero() || dev.NextAction != "" || dev.Email != "alice@contoso.com" {
		t.Errorf("dev after login: %+v", dev)
	}
	if app := st["app"]; app.LoggedIn || app.Health != account.HealthLoggedOut || app.NextAction != "run: mailoauth login app" {
		t.Errorf("app never logged in: %+v", app)
	}
	if len(st) != 8 {
		t.Errorf("status lists %d accounts, want 8 (every account of the config)", len(st))
	}
	if ex := dev.Access[0]; !ex.RefreshDue.Equal(ex.Expiry.Add(-5 * time.Minute)) {
		t.Errorf("exchange refresh due %v, want 5 minutes before its expiry %v", ex.RefreshDue, ex.Expiry)
	}
	human := e.exec(nil, nil, "status")
	if human.code != 0 || !regexp.MustCompile(`(?m)^dev .*exchange expires in \S+ .* refresh in \S+$`).MatchString(human.out) {
		t.Errorf("status table:\n%s\n%s", human.out, human.err)
	}

	r := e.exec(nil, nil, "logout", "dev")
	if r.code != 0 || !strings.Contains(r.err, "Logged out dev") {
		t.Fatalf("logout: exit %d\n%s", r.code, r.err)
	}
	if dev := status()["dev"]; dev.LoggedIn || dev.Health != account.HealthLoggedOut || len(dev.Access) != 0 {
		t.Errorf("dev after logout: %+v", dev)
	}
	if r := e.exec(nil, nil, "token", "dev"); r.code != ExitRelogin {
		t.Errorf("token after logout: exit %d", r.code)
	}
	if r := e.exec(nil, nil, "logout", "dev"); r.code != 0 || !strings.Contains(r.err, "was not logged in") {
		t.Errorf("second logout: exit %d\n%s", r.code, r.err)
	}
}

func TestConsent(t *testing.T) {
	e := newEmuEnv(t)
	t.Run("url only", func(t *testing.T) {
		e := e.with(t)
		r := e.exec(nil, nil, "consent", "dev", "--url-only")
		u := strings.TrimSpace(r.out)
		if r.code != 0 || !strings.HasPrefix(u, e.srv.URL+"/"+e.demo.TenantID+"/v2.0/adminconsent?") ||
			!strings.Contains(u, "client_id="+e.demo.PublicClientID) || !strings.Contains(u, "scope=https") {
			t.Errorf("exit %d, url %q\n%s", r.code, u, r.err)
		}
		r = e.exec(nil, nil, "consent", "dev", "--url-only", "--v1")
		if !strings.HasPrefix(strings.TrimSpace(r.out), e.srv.URL+"/"+e.demo.TenantID+"/adminconsent?") {
			t.Errorf("v1 url %q", r.out)
		}
	})
	t.Run("common refused", func(t *testing.T) {
		e := e.with(t)
		r := e.exec(nil, nil, "consent", "multi", "--url-only")
		if r.code != ExitError || !strings.Contains(r.err, "tenant") || r.out != "" {
			t.Errorf("exit %d, out %q, stderr:\n%s", r.code, r.out, r.err)
		}
	})
	t.Run("admin grants", func(t *testing.T) {
		e := e.with(t)
		in, watch := e.pasteSignIn("alice@contoso.com", false)
		r := e.exec(in, watch, "consent", "dev", "--no-browser", "--paste", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.err)
		}
		var got consentJSON
		if err := json.Unmarshal([]byte(r.out), &got); err != nil {
			t.Fatal(err)
		}
		if got.Tenant != e.demo.TenantID || len(got.Scopes) == 0 {
			t.Errorf("consent result %+v", got)
		}
	})
	t.Run("non-admin", func(t *testing.T) {
		e := e.with(t)
		in, watch := e.pasteSignIn("bob@contoso.com", false)
		r := e.exec(in, watch, "consent", "dev", "--no-browser", "--paste")
		if r.code != ExitError || !strings.Contains(r.err, "admin consent for dev") {
			t.Errorf("exit %d\n%s", r.code, r.err)
		}
	})
}

// TestStatusHealth: what `status` and `token` show when refreshing fails.
// A 429 is recorded in the store with its Retry-After, so the next
// `mailoauth token` (another process) waits too instead of asking again;
// a refused refresh token makes the account "relogin" with the command; a
// new login clears both.
func TestStatusHealth(t *testing.T) {
	e := newEmuEnv(t)
	e.login("dev")
	dev := func() account.Status {
		t.Helper()
		r := e.exec(nil, nil, "status", "--json")
		var list []account.Status
		if err := json.Unmarshal([]byte(r.out), &list); err != nil || r.code != 0 {
			t.Fatalf("status: exit %d, %v\n%s%s", r.code, err, r.out, r.err)
		}
		for _, s := range list {
			if s.Account == "dev" {
				return s
			}
		}
		t.Fatal("status lists no dev")
		return account.Status{}
	}

	t.Run("throttled", func(t *testing.T) {
		e := e.with(t)
		if err := e.srv.UpdateSettings(func(s *emulator.Settings) { s.Throttle, s.RetryAfter = true, 120 }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.srv.UpdateSettings(func(s *emulator.Settings) { s.Throttle = false }) })
		e.expireLocally("dev", "exchange")
		e.srv.ResetCounts()
		start := time.Now()
		for i := range 2 {
			r := e.exec(nil, nil, "token", "dev")
			if r.code != ExitError || r.out != "" || !strings.Contains(r.err, "mailoauth: refresh dev") {
				t.Errorf("token call %d: exit %d, stdout %q, stderr:\n%s", i+1, r.code, r.out, r.err)
			}
		}
		// Retry-After (120 s) is longer than the engine's longest backoff:
		// no retry in the first call, and the second call does not ask.
		if n := e.srv.Counts()["token"]; n != 1 {
			t.Errorf("token endpoint calls = %d, want 1", n)
		}
		st := dev()
		if st.Health != account.HealthError || st.LastError == "" || !strings.Contains(st.NextAction, "retried automatically") {
			t.Errorf("status after a 429: %+v", st)
		}
		if lo, hi := start.Add(110*time.Second), time.Now().Add(121*time.Second); st.RetryAfter.Before(lo) || st.RetryAfter.After(hi) {
			t.Errorf("retry_after = %v, want about 120 s after %v", st.RetryAfter, start)
		}
		human := e.exec(nil, nil, "status")
		if !strings.Contains(human.out, "dev ") || !strings.Contains(human.out, " error ") || !strings.Contains(human.err, "dev: last error") {
			t.Errorf("status table:\n%s\n%s", human.out, human.err)
		}
	})

	t.Run("relogin", func(t *testing.T) {
		e := e.with(t)
		e.login("dev") // a new login clears the throttled state
		if st := dev(); st.Health != account.HealthOK || st.LastError != "" || !st.RetryAfter.IsZero() {
			t.Fatalf("status after a new login: %+v", st)
		}
		if err := e.srv.RevokeUserSessions("alice@contoso.com"); err != nil {
			t.Fatal(err)
		}
		e.expireLocally("dev", "exchange")
		// The process that saw the refusal passes on the server's codes and hint.
		r := e.exec(nil, nil, "token", "dev", "--json")
		if r.code != ExitRelogin {
			t.Fatalf("token with a revoked refresh token: exit %d\n%s", r.code, r.err)
		}
		var ej struct{ Error errorJSON }
		if err := json.Unmarshal([]byte(r.out), &ej); err != nil {
			t.Fatalf("%v\n%s", err, r.out)
		}
		if !ej.Error.ReloginRequired || ej.Error.Command != "mailoauth login dev" || ej.Error.Code != "invalid_grant" ||
			len(ej.Error.AADSTS) == 0 || ej.Error.Hint == "" || !strings.Contains(r.err, "Hint: ") {
			t.Errorf("token --json after invalid_grant: %+v\nstderr:\n%s", ej.Error, r.err)
		}
		st := dev()
		if st.Health != account.HealthRelogin || st.NextAction != "run: mailoauth login dev" || !strings.Contains(st.LastError, "invalid_grant") {
			t.Errorf("status after invalid_grant: %+v", st)
		}
		human := e.exec(nil, nil, "status")
		if !strings.Contains(human.out, "relogin") || !strings.Contains(human.out, "run: mailoauth login dev") {
			t.Errorf("status table:\n%s", human.out)
		}
	})
}
