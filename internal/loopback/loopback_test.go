package loopback

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRedirectURI(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr string
	}{
		{"http://localhost:9999/Callback", Target{Addr: "127.0.0.1:9999", Path: "/Callback"}, ""},
		{"http://127.0.0.1/testApp/", Target{Addr: "127.0.0.1:0", Path: "/testApp/"}, ""},
		{"http://localhost", Target{Addr: "127.0.0.1:0", Path: "/"}, ""},
		{"http://LOCALHOST:8400/a%20b", Target{Addr: "127.0.0.1:8400", Path: "/a%20b"}, ""},
		{"https://localhost/", Target{}, "not a loopback http"},
		{"http://[::1]:8400/", Target{}, "IPv6"},
		{"http://192.168.1.5:8400/", Target{}, "not on this machine"},
		{"http://localhost/?x=1", Target{}, "query"},
		{"http://localhost:99999/", Target{}, "bad port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRedirectURI(tt.in)
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
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestServer(t *testing.T) {
	judge := func(q url.Values) error {
		switch {
		case q.Get("code") == "" && q.Get("error") == "":
			return ErrNotCallback
		case q.Get("error") != "":
			return errors.New("sign-in refused: <script>alert(1)</script>")
		}
		return nil
	}
	t.Run("success", func(t *testing.T) {
		s, err := Listen("http://127.0.0.1/cb", judge, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !strings.HasPrefix(s.RedirectURI(), "http://127.0.0.1:") || !strings.HasSuffix(s.RedirectURI(), "/cb") {
			t.Fatalf("RedirectURI = %q", s.RedirectURI())
		}
		base := strings.TrimSuffix(s.RedirectURI(), "/cb")
		if st, _, _ := get(t, base+"/favicon.ico"); st != 404 {
			t.Errorf("other path: status %d", st)
		}
		if st, _, body := get(t, s.RedirectURI()); st != 400 || !strings.Contains(body, "Not a sign-in response") {
			t.Errorf("no code: %d %s", st, body)
		}
		st, h, body := get(t, s.RedirectURI()+"?code=abc&state=s")
		if st != 200 || !strings.Contains(body, `<h1 id="status" class="ok">Signed in</h1>`) {
			t.Errorf("success: %d %s", st, body)
		}
		for k, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
			if h.Get(k) != want {
				t.Errorf("%s = %q, want %q", k, h.Get(k), want)
			}
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("CSP = %q", h.Get("Content-Security-Policy"))
		}
		q, err := s.Wait(context.Background())
		if err != nil || q.Get("code") != "abc" {
			t.Fatalf("Wait = %v, %v", q, err)
		}
		if _, _, body := get(t, s.RedirectURI()+"?code=again&state=s"); !strings.Contains(body, "already finished") {
			t.Errorf("second redirect: %s", body)
		}
	})
	t.Run("failure page escapes and hints", func(t *testing.T) {
		s, err := Listen("http://localhost/", judge, &Pages{Hint: func(error) string { return "register this exact redirect URI" }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		st, _, body := get(t, s.RedirectURI()+"?error=access_denied")
		if st != 400 || strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") || !strings.Contains(body, "register this exact redirect URI") {
			t.Errorf("failure: %d %s", st, body)
		}
		if _, err := s.Wait(context.Background()); err == nil {
			t.Error("Wait: no error")
		}
	})
	t.Run("fixed port as written, custom success page", func(t *testing.T) {
		// A registered redirect with a port (the PKCE how-to's
		// http://localhost:9999/Callback) is served on that very port of
		// 127.0.0.1, path case kept, and sent unchanged.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		uri := "http://localhost:" + port + "/Callback"
		s, err := Listen(uri, judge, &Pages{SuccessTitle: "Consent granted", SuccessMessage: "The administrator consented."})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.RedirectURI() != uri {
			t.Errorf("RedirectURI = %q, want %q as registered", s.RedirectURI(), uri)
		}
		if st, _, _ := get(t, "http://127.0.0.1:"+port+"/callback?code=x&state=s"); st != 404 {
			t.Errorf("path of another case: status %d, want 404", st)
		}
		st, _, body := get(t, "http://127.0.0.1:"+port+"/Callback?code=x&state=s")
		if st != 200 || !strings.Contains(body, `class="ok">Consent granted</h1>`) || !strings.Contains(body, "The administrator consented.") {
			t.Errorf("success: %d %s", st, body)
		}
		if q, err := s.Wait(context.Background()); err != nil || q.Get("code") != "x" {
			t.Errorf("Wait = %v, %v", q, err)
		}
	})
	t.Run("ignored request keeps waiting", func(t *testing.T) {
		stale := errors.New("the redirect's state does not match")
		s, err := Listen("http://127.0.0.1/", func(q url.Values) error {
			if q.Get("state") != "ours" {
				return Ignore(stale)
			}
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if st, _, body := get(t, s.RedirectURI()+"?code=old&state=old"); st != 400 || !strings.Contains(body, "Not this sign-in") || !strings.Contains(body, "state does not match") {
			t.Errorf("ignored: %d %s", st, body)
		}
		if st, _, body := get(t, s.RedirectURI()+"?code=new&state=ours"); st != 200 || !strings.Contains(body, "Signed in") {
			t.Errorf("after an ignored one: %d %s", st, body)
		}
		if q, err := s.Wait(context.Background()); err != nil || q.Get("code") != "new" {
			t.Errorf("Wait = %v, %v", q, err)
		}
		if err := Ignore(stale); !errors.Is(err, stale) || !errors.Is(err, ErrNotCallback) {
			t.Errorf("Ignore(%v) matches neither the reason nor ErrNotCallback", stale)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		s, err := Listen("http://127.0.0.1/", judge, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := Listen(s.RedirectURI(), judge, nil); err == nil || !strings.Contains(err.Error(), "another sign-in") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		s, err := Listen("http://127.0.0.1/", judge, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}

func FuzzParseRedirectURI(f *testing.F) {
	f.Add("http://localhost:9999/Callback")
	f.Add("http://127.0.0.1/testApp/")
	f.Add("http://[::1]/")
	f.Add("http://evil.example@127.0.0.1/")
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseRedirectURI(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(tg.Addr, "127.0.0.1:") || !strings.HasPrefix(tg.Path, "/") {
			t.Fatalf("accepted %q as %+v", s, tg)
		}
	})
}

// FuzzServe feeds arbitrary callback requests to the redirect handler: it
// must never panic, never echo markup from the query into the page, and
// only report a result for requests on the redirect path.
func FuzzServe(f *testing.F) {
	f.Add("GET", "/cb", "code=abc&state=s")
	f.Add("GET", "/cb", "error=%3Cscript%3E&error_description=x")
	f.Add("POST", "/cb", "code=%zz")
	f.Add("GET", "/other", "code=1")
	f.Fuzz(func(t *testing.T, method, path, rawQuery string) {
		if method != "GET" && method != "POST" {
			method = "GET"
		}
		s := &Server{path: "/cb", done: make(chan result, 1), handler: func(q url.Values) error {
			if q.Get("code") == "" && q.Get("error") == "" {
				return ErrNotCallback
			}
			if e := q.Get("error"); e != "" {
				return errors.New("refused: " + e)
			}
			return nil
		}}
		u := &url.URL{Path: path, RawQuery: rawQuery}
		req := httptest.NewRequest(method, "http://127.0.0.1/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		w := httptest.NewRecorder()
		s.serve(w, req)
		body := w.Body.String()
		if strings.Contains(body, "<script") {
			t.Fatalf("markup echoed: %s", body)
		}
		select {
		case <-s.done:
			if u.EscapedPath() != "/cb" {
				t.Fatalf("result for path %q", u.EscapedPath())
			}
		default:
		}
	})
}
