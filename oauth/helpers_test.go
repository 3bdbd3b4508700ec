package oauth

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/provider"
)

// seen is one request a fake server received.
type seen struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
}

// recorder collects requests and answers with a programmable handler.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (r *recorder) record(req *http.Request) seen {
	body, _ := io.ReadAll(req.Body)
	form, _ := url.ParseQuery(string(body))
	s := seen{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Form: form}
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	r.mu.Unlock()
	return s
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fakeServer starts an httptest server that records every request and
// passes it to h. The returned provider points its endpoints at it.
func fakeServer(t *testing.T, kind provider.Kind, h func(w http.ResponseWriter, s seen)) (*recorder, *provider.Provider, *httptest.Server) {
	t.Helper()
	rec := &recorder{}
	p, srv := fakeServerHandler(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, rec.record(r))
	}))
	return rec, p, srv
}

// fakeServerHandler starts h and returns a provider of the given kind
// whose endpoints point at it.
func fakeServerHandler(t *testing.T, kind provider.Kind, h http.Handler) (*provider.Provider, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var p *provider.Provider
	switch kind {
	case provider.KindMicrosoft:
		var err error
		p, err = provider.Microsoft(provider.MicrosoftOptions{Tenant: "contoso.onmicrosoft.com", Authority: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
	case provider.KindGoogle:
		p = provider.Google()
		p.Endpoints.TokenURL = srv.URL + "/token"
		p.Endpoints.DeviceAuthURL = srv.URL + "/device/code"
		p.Endpoints.AuthURL = srv.URL + "/auth"
	default:
		p = &provider.Provider{Kind: provider.KindOIDC, Endpoints: provider.Endpoints{
			Issuer: srv.URL, TokenURL: srv.URL + "/token", AuthURL: srv.URL + "/auth", DeviceAuthURL: srv.URL + "/device",
		}}
	}
	return p, srv
}

// handlerTransport serves requests in memory, so tests inside a
// testing/synctest bubble never touch the network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

var fixedNow = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

func tokenJSON(access, refresh string) map[string]any {
	m := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3599}
	if refresh != "" {
		m["refresh_token"] = refresh
	}
	return m
}
