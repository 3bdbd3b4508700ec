package tokens

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/oauth"
)

// The engine with this module's real token client (package oauth) and its
// real *oauth.Error, against a scripted token endpoint served in memory so
// the test runs in a synctest bubble.

type scriptedEndpoint struct {
	mu      sync.Mutex
	replies []func(w http.ResponseWriter) // one per request, in order
	got     []string                      // "at <time since start>: refresh_token=… scope=…"
}

func (e *scriptedEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf("%v rt=%s scope=%s", time.Since(epoch), r.PostFormValue("refresh_token"), r.PostFormValue("scope")))
	w.Header().Set("Content-Type", "application/json")
	if len(e.replies) == 0 {
		w.WriteHeader(500)
		return
	}
	reply := e.replies[0]
	e.replies = e.replies[1:]
	reply(w)
}

func reply(status int, header, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if k, v, ok := strings.Cut(header, ": "); ok {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// memTransport serves requests in memory (no sockets inside the bubble).
type memTransport struct{ h http.Handler }

func (t memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

func TestSourceWithOAuthClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ep := &scriptedEndpoint{replies: []func(http.ResponseWriter){
			reply(503, "", `{"error":"temporarily_unavailable"}`),
			reply(429, "Retry-After: 3", `{"error":"throttled"}`),
			reply(200, "", `{"access_token":"at-new","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-rotated","scope":"IMAP.AccessAsUser.All"}`),
			reply(400, "", `{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.","error_codes":[700082]}`),
		}}
		e := newEnv(t, time.Now().Add(-time.Minute))
		r := oauthRefresher("https://login.example/token", &http.Client{Transport: memTransport{ep}})
		s := e.source(t, "imap", func(c *Config) { c.Refresher = r; c.Scopes = []string{"IMAP.AccessAsUser.All"} })

		if got := accessToken(t, s); got != "at-new" {
			t.Fatalf("got %s", got)
		}
		stored, err := LoadToken(t.Context(), e.store, "work", KindRefresh)
		if err != nil || stored.RefreshToken != "rt-rotated" {
			t.Fatalf("stored refresh token = %v, %v; want the rotated one", stored, err)
		}
		// 503 → retry after the jittered 1 s backoff; 429 → exactly Retry-After.
		ep.mu.Lock()
		got := ep.got
		ep.mu.Unlock()
		if len(got) != 3 || !strings.HasPrefix(got[0], "0s rt=rt-0 ") || !strings.Contains(got[2], "rt=rt-0 scope=IMAP.AccessAsUser.All") {
			t.Fatalf("requests = %q", got)
		}
		d1, _ := time.ParseDuration(strings.Fields(got[1])[0])
		d2, _ := time.ParseDuration(strings.Fields(got[2])[0])
		if d1 < 500*time.Millisecond || d1 > time.Second || d2-d1 != 3*time.Second {
			t.Errorf("request times %v, %v: want a 0.5–1 s backoff, then exactly 3 s (Retry-After)", d1, d2)
		}

		// An hour later the refresh token has died: invalid_grant with AADSTS.
		time.Sleep(time.Hour)
		_, err = s.TokenContext(t.Context())
		var re *ReloginError
		if !errors.As(err, &re) || !errors.Is(err, ErrReloginRequired) {
			t.Fatalf("got %v, want a ReloginError", err)
		}
		want := ReloginError{Account: "work", Command: "mailoauth login work", Reason: re.Reason}
		bare := *re
		bare.Err = nil // checked below
		if diff := cmp.Diff(want, bare); diff != "" || !strings.Contains(re.Reason, "700082") {
			t.Errorf("(-want +got):\n%s\nreason: %s", diff, re.Reason)
		}
		// The server's error stays reachable, for its AADSTS codes and hint.
		if oe := (*oauth.Error)(nil); !errors.As(err, &oe) || !slices.Contains(oe.AADSTS, 700082) {
			t.Errorf("errors.As(*oauth.Error) on %v: %+v", err, oe)
		}
		if strings.Contains(err.Error(), "rt-rotated") {
			t.Error("the error shows the refresh token")
		}
	})
}
