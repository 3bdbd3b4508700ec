package daemon

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/tokens"
)

// BenchmarkServeToken is the daemon's side of a cached `mailoauth token`:
// one GET /v1/token answered from memory (plus the logout check, one
// store read), without the socket.
func BenchmarkServeToken(b *testing.B) {
	e := newEnv(b, time.Now().Add(time.Hour))
	d, err := New(Options{Socket: "/nonexistent/d.sock", Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	aopts := account.Options{Store: e.store, Source: tokens.Config{Notify: d.Notify}}
	m, err := account.Open(b.Context(), e.cfg, aopts)
	if err != nil {
		b.Fatal(err)
	}
	h := d.handler(FromManager(m, aopts))
	req := httptest.NewRequest(http.MethodGet, "/v1/token?account=work&resource=imap", nil)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkClientToken is a whole cached request as `mailoauth token`
// makes it: connect to the socket, GET /v1/token, decode.
func BenchmarkClientToken(b *testing.B) {
	e := newEnv(b, time.Now().Add(time.Hour))
	r := e.start(Options{})
	for b.Loop() {
		if _, _, err := r.client.Token(b.Context(), "work", "imap"); err != nil {
			b.Fatal(err)
		}
	}
}
