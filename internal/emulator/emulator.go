// Package emulator is an offline Microsoft identity platform (v2.0) for
// tests and demos: discovery, JWKS, authorize, token (every grant),
// devicecode, admin consent and logout, with Microsoft's paths per tenant and
// per cloud, Microsoft's error envelope and AADSTS codes, driven by a
// scenario file and an admin API.
//
// It is an independent oracle: it is written from the protocol reference
// (shared/reference/microsoft-identity.md) and imports none of the client
// packages, so a client bug and an emulator bug cannot cancel out.
//
//	srv, err := emulator.Start(emulator.ServerOptions{}) // 127.0.0.1:0, HTTPS
//	if err != nil { ... }
//	defer srv.Close()
//	client := srv.HTTPClient() // trusts the emulator's CA
//	tokenURL := srv.URL + "/" + srv.Demo().TenantID + "/oauth2/v2.0/token"
package emulator

import (
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure an Emulator. The zero value runs the built-in scenario.
type Options struct {
	// Scenario to serve; nil means the built-in default scenario.
	Scenario *Scenario
	// Now is the clock; tests inject one to expire codes and tokens without
	// sleeping. Nil means time.Now.
	Now func() time.Time
	// Logger receives request and error logs (never secrets). Nil discards.
	Logger *slog.Logger
}

// Emulator holds the directory model and all issued codes and tokens. Every
// field below mu is guarded by it. Create one with New (handler only) or
// Start (handler plus HTTPS listener).
type Emulator struct {
	now    func() time.Time
	logger *slog.Logger

	signingKey *rsa.PrivateKey
	signingKid string
	signingX5t string
	signingX5c []string

	mux *http.ServeMux

	mu          sync.Mutex
	model       *Model
	authCodes   map[string]*AuthCode
	deviceCodes map[string]*DeviceCode // by device_code
	userCodes   map[string]*DeviceCode // by user_code
	refresh     map[string]*RefreshToken
	access      map[string]*AccessToken
	usedJTIs    map[string]time.Time
	counts      map[string]int
	tlsEnabled  bool
}

// New builds an Emulator from opts. It does not listen; serve Handler()
// yourself or use Start.
func New(opts Options) (*Emulator, error) {
	e := &Emulator{now: opts.Now, logger: opts.Logger}
	if e.now == nil {
		e.now = time.Now
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	sc := opts.Scenario
	if sc == nil {
		var err error
		sc, err = ParseScenario(defaultScenario, "")
		if err != nil {
			return nil, fmt.Errorf("built-in scenario: %w", err)
		}
	}
	m, err := sc.buildModel(e.now())
	if err != nil {
		where := "scenario"
		if sc.file != "" {
			where = sc.file
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrScenario, where, err)
	}
	e.model = m
	e.authCodes = map[string]*AuthCode{}
	e.deviceCodes = map[string]*DeviceCode{}
	e.userCodes = map[string]*DeviceCode{}
	e.refresh = map[string]*RefreshToken{}
	e.access = map[string]*AccessToken{}
	e.usedJTIs = map[string]time.Time{}
	e.counts = map[string]int{}
	if err := e.initSigningKey(); err != nil {
		return nil, err
	}
	e.mux = e.routes()
	return e, nil
}

// Handler returns the emulator's HTTP handler (all endpoints and the admin
// API under /_emulator/).
func (e *Emulator) Handler() http.Handler { return e.mux }

// route registers h under pattern, counting requests under name.
func (e *Emulator) route(mux *http.ServeMux, pattern, name string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		e.count(name)
		if id := r.Header.Get("client-request-id"); isGUID(id) {
			w.Header().Set("client-request-id", id) // echoed, as Microsoft does
		}
		e.logger.Debug("emulator request", "method", r.Method, "path", r.URL.Path, "host", r.Host) // no query: it can carry codes
		defer func() {
			if p := recover(); p != nil {
				e.logger.Error("emulator handler panic", "path", r.URL.Path, "panic", fmt.Sprint(p))
				e.WriteError(w, r, &Error{OAuth: "server_error", Status: 500, Description: "internal emulator error"})
			}
		}()
		h(w, r)
	})
}

// count adds one to the request counter name.
func (e *Emulator) count(name string) {
	e.mu.Lock()
	e.counts[name]++
	e.mu.Unlock()
}

// routes builds the mux: Microsoft's paths per tenant (the cloud comes from
// the Host header), the browser-facing endpoints (E2's handlers) and the
// admin API.
func (e *Emulator) routes() *http.ServeMux {
	mux := http.NewServeMux()
	// Discovery and keys.
	e.route(mux, "GET /{tenant}/v2.0/.well-known/openid-configuration", "discovery", e.handleDiscoveryV2)
	e.route(mux, "GET /{tenant}/.well-known/openid-configuration", "discovery_v1", e.handleDiscoveryV1)
	e.route(mux, "GET /{tenant}/discovery/v2.0/keys", "keys", e.handleKeys)
	e.route(mux, "GET /{tenant}/discovery/keys", "keys", e.handleKeys)
	e.route(mux, "GET /common/discovery/instance", "instance_discovery", e.handleInstanceDiscovery)
	// Token and device code.
	e.route(mux, "/{tenant}/oauth2/v2.0/token", "token", e.handleToken)
	e.route(mux, "/{tenant}/oauth2/token", "token_v1", e.handleTokenV1)
	e.route(mux, "/{tenant}/oauth2/v2.0/devicecode", "devicecode", e.handleDeviceCode)
	e.route(mux, "/{tenant}/oauth2/devicecode", "devicecode_v1", e.handleDeviceCode)
	// Browser-facing (E2).
	e.route(mux, "/{tenant}/oauth2/v2.0/authorize", "authorize", e.handleAuthorize)
	e.route(mux, "/{tenant}/oauth2/authorize", "authorize_v1", e.handleAuthorize)
	e.route(mux, "GET /{tenant}/v2.0/adminconsent", "adminconsent", e.handleAdminConsent)
	e.route(mux, "GET /{tenant}/adminconsent", "adminconsent_v1", e.handleAdminConsentV1)
	e.route(mux, "/{tenant}/oauth2/v2.0/logout", "logout", e.handleLogout)
	e.route(mux, "/{tenant}/oauth2/logout", "logout_v1", e.handleLogout)
	e.route(mux, "/devicelogin", "devicelogin", e.handleDevicePage)
	e.route(mux, "POST /_emulator/signin", "admin", e.handleAdminSignIn)
	// Admin API.
	e.adminRoutes(mux)
	e.e2Routes(mux)
	return mux
}

// cloudOf returns the cloud a request addresses: by its Host header, and the
// scenario's loopback_cloud for 127.0.0.1, localhost and unknown hosts.
func (e *Emulator) cloudOf(r *http.Request) *Cloud {
	if r != nil {
		if c := cloudForHost(r.Host); c != nil {
			return c
		}
	}
	e.mu.Lock()
	name := e.model.Settings.LoopbackCloud
	e.mu.Unlock()
	return Clouds[name]
}

// CloudOf is cloudOf for E2's handlers.
func (e *Emulator) CloudOf(r *http.Request) *Cloud { return e.cloudOf(r) }

// BaseURL returns scheme://host of the request as the client addressed it;
// every URL the emulator hands out (discovery, issuer, device page) is built
// on it, so a client keeps talking to the same host it started with.
func (e *Emulator) BaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return scheme + "://" + host
}

// Now returns the emulator's clock (the injected one in tests).
func (e *Emulator) Now() time.Time { return e.now() }

// Logger returns the emulator's logger, for E2's handlers.
func (e *Emulator) Logger() *slog.Logger { return e.logger }

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
