// Package loopback receives an OAuth redirect on 127.0.0.1 (RFC 8252 §7.3):
// it listens on the port of the redirect URI (or a free one), waits for the
// browser to arrive on the redirect path, lets the caller judge the query,
// and answers the browser with a plain success or failure page.
package loopback

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotCallback is returned by a Handler for a request that is not the
// redirect (no code, no error): the browser gets a 400 page and the server
// keeps waiting.
var ErrNotCallback = errors.New("not an authorization response")

// Ignore marks a request to turn away without ending the wait, such as a
// redirect of an earlier sign-in (another state) arriving from a stale tab
// on a fixed port, or a forged one: the browser gets a failure page with
// reason, and the server keeps waiting for the right redirect. The result
// matches both reason and ErrNotCallback with errors.Is.
func Ignore(reason error) error { return &ignored{reason} }

type ignored struct{ reason error }

func (i *ignored) Error() string   { return i.reason.Error() }
func (i *ignored) Unwrap() []error { return []error{i.reason, ErrNotCallback} }

// Handler judges the redirect's query. nil means success; ErrNotCallback
// or an Ignore error means keep waiting; any other error ends the wait with
// a failure page.
type Handler func(q url.Values) error

// Server is a one-shot loopback redirect receiver.
type Server struct {
	ln          net.Listener
	srv         *http.Server
	redirectURI string
	path        string

	handler Handler // set once by Listen
	pages   Pages   // set once by Listen
	done    chan result

	mu    sync.Mutex
	fired bool // a redirect was judged: later ones get "already done"
}

type result struct {
	q   url.Values
	err error
}

// Target is where a redirect URI says to listen.
type Target struct {
	Addr string // 127.0.0.1:port, port 0 for a free one
	Path string // "/" when the URI has none
}

// ParseRedirectURI checks that uri is a loopback http redirect and says
// where to listen. localhost is served on 127.0.0.1 (RFC 8252 §8.3 prefers
// the IP literal; listeners here bind 127.0.0.1 only); IPv6 [::1] is refused
// because Microsoft does not support it (reference §2.1).
func ParseRedirectURI(uri string) (Target, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Target{}, fmt.Errorf("redirect uri %q: %w", uri, err)
	}
	if u.Scheme != "http" {
		return Target{}, fmt.Errorf("redirect uri %q is not a loopback http address: a local listener cannot receive it", uri)
	}
	switch h := u.Hostname(); {
	case h == "127.0.0.1" || strings.EqualFold(h, "localhost"):
	case h == "::1":
		return Target{}, fmt.Errorf("redirect uri %q: IPv6 loopback is not supported, use http://127.0.0.1/ or http://localhost/", uri)
	default:
		return Target{}, fmt.Errorf("redirect uri %q is not on this machine: use http://127.0.0.1[:port]/path or http://localhost[:port]/path", uri)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Target{}, fmt.Errorf("redirect uri %q must not carry a query or fragment", uri)
	}
	port := 0
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return Target{}, fmt.Errorf("redirect uri %q: bad port", uri)
		}
		port = n
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return Target{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: path}, nil
}

// Pages tailor what the browser is told, so an admin consent does not
// read "Signed in". The zero value gives the sign-in wording and no hints.
type Pages struct {
	// SuccessTitle and SuccessMessage replace the page of an accepted
	// redirect; FailureTitle the title of a refused one.
	SuccessTitle, SuccessMessage, FailureTitle string
	// Hint, if not nil, gives the line of advice shown under an error on
	// the failure page.
	Hint func(error) string
}

// Listen starts listening for redirectURI. A URI without a port gets a free
// port, filled into RedirectURI (Microsoft ignores the port when matching
// localhost redirects); a URI with a port is used as written, so it matches
// the registration exactly, e.g. http://localhost:9999/Callback listens on
// 127.0.0.1:9999 for /Callback.
//
// h judges every request that arrives on the redirect path; it may be
// called as soon as Listen returns. pages may be nil.
func Listen(redirectURI string, h Handler, pages *Pages) (*Server, error) {
	if h == nil {
		return nil, errors.New("loopback: nil handler")
	}
	t, err := ParseRedirectURI(redirectURI)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the redirect on %s (is another sign-in running?): %w", t.Addr, err)
	}
	s := &Server{ln: ln, redirectURI: redirectURI, path: t.Path, handler: h, done: make(chan result, 1)}
	if pages != nil {
		s.pages = *pages
	}
	if strings.HasSuffix(t.Addr, ":0") {
		u, _ := url.Parse(redirectURI)
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		u.Host = net.JoinHostPort(u.Hostname(), port)
		if u.Path == "" {
			u.Path = "/"
		}
		s.redirectURI = u.String()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// RedirectURI is the redirect URI to send, with the chosen port.
func (s *Server) RedirectURI() string { return s.redirectURI }

// Wait returns when the handler has accepted (nil error) or rejected a
// redirect, or when ctx ends.
func (s *Server) Wait(ctx context.Context) (url.Values, error) {
	select {
	case r := <-s.done:
		return r.q, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the listener. The page of a finished redirect has already
// been written when Wait returns, so closing at once loses nothing.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No scripts, no outside resources, no Referer carrying the code.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", "text/html; charset=utf-8")
	if r.URL.EscapedPath() != s.path || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		w.WriteHeader(http.StatusNotFound)
		page.Execute(w, pageData{Title: "Not found", Message: "This address only receives the sign-in redirect."})
		return
	}
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		page.Execute(w, pageData{Title: "Bad request", Message: "The sign-in response could not be read."})
		return
	}
	// form_post responses arrive in the body; query ones in the URL.
	q := r.Form
	s.mu.Lock()
	fired := s.fired
	s.mu.Unlock()
	if fired {
		page.Execute(w, pageData{Title: "Already done", Message: "This sign-in has already finished. You can close this window."})
		return
	}
	err := s.handler(q)
	var ig *ignored
	if errors.As(err, &ig) {
		w.WriteHeader(http.StatusBadRequest)
		page.Execute(w, pageData{Title: "Not this sign-in", Message: ig.reason.Error(), Failed: true,
			Hint: "If you started a new sign-in, finish it in the tab it opened; mailoauth is still waiting for it."})
		return
	}
	if errors.Is(err, ErrNotCallback) {
		w.WriteHeader(http.StatusBadRequest)
		page.Execute(w, pageData{Title: "Not a sign-in response", Message: "This page expects the sign-in redirect, which carries a code or an error."})
		return
	}
	s.mu.Lock()
	if s.fired {
		s.mu.Unlock()
		page.Execute(w, pageData{Title: "Already done", Message: "This sign-in has already finished. You can close this window."})
		return
	}
	s.fired = true
	s.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		d := pageData{Title: "Sign-in failed", Message: err.Error(), Failed: true}
		if s.pages.FailureTitle != "" {
			d.Title = s.pages.FailureTitle
		}
		if s.pages.Hint != nil {
			d.Hint = s.pages.Hint(err)
		}
		page.Execute(w, d)
	} else {
		d := pageData{Title: "Signed in", Message: "mailoauth received the sign-in. You can close this window and return to the terminal."}
		if s.pages.SuccessTitle != "" {
			d.Title = s.pages.SuccessTitle
		}
		if s.pages.SuccessMessage != "" {
			d.Message = s.pages.SuccessMessage
		}
		page.Execute(w, d)
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.done <- result{q: q, err: err}
}

type pageData struct {
	Title, Message, Hint string
	Failed               bool
}

// page is the whole browser-facing UI: one self-contained document.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailoauth: {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}.ok{color:#1a7f37}.fail{color:#cf222e}p.hint{background:#fff8c5;padding:.6em;border-radius:4px}</style>
</head><body>
<h1 id="status" class="{{if .Failed}}fail{{else}}ok{{end}}">{{.Title}}</h1>
<p id="message">{{.Message}}</p>
{{if .Hint}}<p class="hint" id="hint">{{.Hint}}</p>{{end}}
{{if .Failed}}<p>Return to the terminal for details.</p>{{end}}
</body></html>
`))
