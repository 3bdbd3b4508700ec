package oauth

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/browser"
	"github.com/mailoauth/mailoauth/internal/loopback"
	"github.com/mailoauth/mailoauth/provider"
)

// Browser opens a URL for the user. The default is the system browser.
type Browser interface {
	Open(url string) error
}

// browser.System is the default Browser.
var _ Browser = browser.System{}

// BrowserFunc adapts a function to Browser.
type BrowserFunc func(url string) error

// Open calls f(url).
func (f BrowserFunc) Open(url string) error { return f(url) }

// DefaultTimeout bounds an interactive sign-in.
const DefaultTimeout = 5 * time.Minute

// DefaultRedirectURI is used when an account names none: 127.0.0.1 with a
// free port, which Microsoft matches against a registered http://localhost
// or http://127.0.0.1 ignoring the port (reference §2.1).
const DefaultRedirectURI = "http://127.0.0.1/"

// Interaction says how to reach the user during a browser sign-in.
type Interaction struct {
	// ShowURL is always called with the URL to open, so it is printed
	// even when a browser opens (it may fail silently on a server).
	ShowURL func(url string)
	// Browser opens the URL; nil means the system browser.
	Browser Browser
	// NoBrowser only shows the URL (--no-browser).
	NoBrowser bool
	// Paste, when set, is read line by line for the final redirect URL
	// pasted by the user: the fallback when the browser runs on another
	// machine (SSH) and cannot reach this listener. The reader is read in
	// a goroutine that lives until the reader returns: pass one you can
	// close, or os.Stdin in a CLI that exits afterwards.
	Paste io.Reader
	// Notify tells the user something went wrong with a pasted line and
	// that another is awaited; nil drops such messages.
	Notify func(msg string)
	// Timeout bounds the wait for the user; 0 means DefaultTimeout.
	Timeout time.Duration
}

// LoginOptions configure an interactive authorization code sign-in.
type LoginOptions struct {
	// RedirectURI must match the app registration. A loopback http URI is
	// served locally ("" means DefaultRedirectURI); any other URI (an
	// https web redirect) needs Paste.
	RedirectURI string
	Scopes      []string    // every scope to consent to; the token is for the first resource's
	Auth        AuthOptions // login_hint, prompt and other authorization URL parameters
	Interaction
}

// Login runs the authorization code flow with PKCE in the user's browser
// (RFC 8252): listen on the loopback redirect, open and print the URL, wait
// for the redirect (or a pasted URL), check state, and redeem the code.
func (c *Client) Login(ctx context.Context, o LoginOptions) (*Token, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var ar *AuthRequest
	q, err := c.interact(ctx, o.Interaction, o.RedirectURI, "authorization",
		func(redirect string) (string, error) {
			var err error
			ar, err = c.AuthCodeURL(redirect, o.Scopes, o.Auth)
			if err != nil {
				return "", err
			}
			return ar.URL, nil
		},
		func(q url.Values) error {
			if q.Get("code") == "" && q.Get("error") == "" {
				return loopback.ErrNotCallback
			}
			_, err := ar.CodeFromQuery(q)
			if errors.Is(err, ErrStateMismatch) {
				// Not this sign-in's answer (a stale tab, a forged
				// request): refuse it and keep waiting for ours.
				return loopback.Ignore(err)
			}
			return err
		}, loopback.Pages{})
	if err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	code, _ := ar.CodeFromQuery(q)
	return c.Exchange(ctx, ar, code)
}

// interact runs the browser part shared by Login and AdminConsent. build
// gets the final redirect URI (with the listener's port) and returns the
// URL to open; judge accepts or rejects a redirect query.
func (c *Client) interact(ctx context.Context, it Interaction, redirectURI, endpoint string,
	build func(redirect string) (string, error), judge loopback.Handler, success loopback.Pages) (url.Values, error) {
	if redirectURI == "" {
		redirectURI = DefaultRedirectURI
	}
	timeout := it.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// The listener starts before the URL exists (it needs the port), so
	// requests are turned away until build has run; the mutex also
	// publishes what build set (state, verifier) to the server goroutine.
	var mu sync.Mutex
	ready := false
	judgeReady := func(q url.Values) error {
		mu.Lock()
		ok := ready
		mu.Unlock()
		if !ok {
			return loopback.ErrNotCallback
		}
		return judge(q)
	}
	results := make(chan pasteResult, 2)
	var srv *loopback.Server
	if _, perr := loopback.ParseRedirectURI(redirectURI); perr == nil {
		var err error
		pages := success
		pages.Hint = func(err error) string {
			var oe *Error
			if errors.As(err, &oe) {
				return oe.Hint
			}
			return ""
		}
		srv, err = loopback.Listen(redirectURI, judgeReady, &pages)
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		redirectURI = srv.RedirectURI()
	} else if it.Paste == nil {
		return nil, fmt.Errorf("%w: without a listener the final URL must be pasted (Interaction.Paste)", perr)
	}
	mu.Lock()
	authURL, err := build(redirectURI)
	ready = err == nil
	mu.Unlock()
	if err != nil {
		return nil, err
	}
	if it.ShowURL != nil {
		it.ShowURL(authURL)
	}
	if !it.NoBrowser {
		b := it.Browser
		if b == nil {
			b = browser.System{}
		}
		if err := b.Open(authURL); err != nil {
			// The URL was shown; the user can open it by hand.
			c.log().Debug("could not open a browser", "err", err)
		}
	}
	if srv != nil {
		go func() {
			q, err := srv.Wait(ctx)
			results <- pasteResult{q, err}
		}()
	}
	if it.Paste != nil {
		go readPasted(ctx, it, judge, results)
	}
	var r pasteResult
	select {
	case r = <-results:
	case <-ctx.Done():
	}
	if r.err == nil && r.q != nil {
		return r.q, nil
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no %s response within %s: %w", endpoint, timeout, ErrExpired)
		}
		return nil, err
	}
	return nil, r.err
}

type pasteResult struct {
	q   url.Values
	err error
}

// readPasted reads pasted redirect URLs until one is judged, the reader
// ends or ctx is done.
func readPasted(ctx context.Context, it Interaction, judge loopback.Handler, out chan<- pasteResult) {
	sc := bufio.NewScanner(it.Paste)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		if ctx.Err() != nil {
			return
		}
		line := sc.Text()
		if len(line) == 0 {
			continue
		}
		q, err := RedirectQuery(line)
		if err == nil {
			err = judge(q)
		}
		// A URL from an older attempt (another state) is most likely a
		// stale tab: the user may paste the right one.
		if errors.Is(err, loopback.ErrNotCallback) || errors.Is(err, ErrStateMismatch) || (err != nil && q == nil) {
			if it.Notify != nil {
				if errors.Is(err, ErrStateMismatch) {
					it.Notify("that address belongs to another sign-in (its state differs, an old tab?): paste the address this sign-in's tab ends on")
				} else {
					it.Notify(fmt.Sprintf("%v; paste the full address again", err))
				}
			}
			continue
		}
		out <- pasteResult{q, err}
		return
	}
}

// adminConsentNotAdminHint explains an admin consent refused because the
// account that signed in holds no admin role.
const adminConsentNotAdminHint = "the account that signed in is not an administrator of this tenant: sign in as a Global Administrator, Cloud Application Administrator or Application Administrator, or send one of them the URL (mailoauth consent ACCOUNT --url-only)"

// AdminConsentOptions configure an admin consent run.
type AdminConsentOptions struct {
	// RedirectURI must be registered for the app; "" means
	// DefaultRedirectURI.
	RedirectURI string
	// Scope is asked by the v2 endpoint, e.g.
	// https://outlook.office365.com/.default; "" means the cloud's
	// Exchange .default.
	Scope string
	// V1 uses the v1 endpoint, which consents to the registered
	// permissions and takes no scope.
	V1 bool
	Interaction
}

// AdminConsentResult is what the tenant's administrator granted.
type AdminConsentResult struct {
	Tenant string   // consented tenant id, as Microsoft reports it (do not use it for authorization)
	Scopes []string // granted scopes (v2 only)
}

// AdminConsentURL returns the admin consent URL and its state, for an
// administrator to open elsewhere (--url-only).
func (c *Client) AdminConsentURL(redirectURI, scope string, v1 bool) (consentURL, state string, err error) {
	if err := c.check(); err != nil {
		return "", "", err
	}
	if scope == "" && c.Provider.Cloud != nil {
		scope = c.Provider.Cloud.ExchangeAppResource + "/.default"
	}
	state = rand.Text()
	u, err := c.Provider.AdminConsentURL(v1, c.ClientID, redirectURI, scope, state)
	return u, state, err
}

// ParseAdminConsent reads an admin consent redirect (reference §2.7):
// admin_consent=True&tenant=…&scope=…, or error and error_description.
func ParseAdminConsent(q url.Values, state string) (*AdminConsentResult, error) {
	if !stateEqual(q.Get("state"), state) {
		return nil, ErrStateMismatch
	}
	if e := ErrorFromQuery("admin consent", q); e != nil {
		switch {
		case e.Code == "access_denied" || e.Code == "permission_denied" || slices.Contains(e.AADSTS, 65004):
			// Microsoft's own example: consent_required with AADSTS65004
			// for a declined consent (reference §2.7).
			e.Hint = "the administrator cancelled or declined the consent: run it again and choose Accept, after checking the permissions the app asks for"
		case e.Code == "consent_required" || slices.Contains(e.AADSTS, 90094) || slices.Contains(e.AADSTS, 90095):
			// Otherwise consent_required means the one who signed in
			// may not consent for the organization.
			e.Hint = adminConsentNotAdminHint
		case e.Hint == "":
			e.Hint = "an administrator of the tenant must sign in and accept; check the app's API permissions and that this redirect URI is registered"
		}
		return nil, e
	}
	if !strings.EqualFold(q.Get("admin_consent"), "true") || q.Get("tenant") == "" {
		return nil, errors.New("the admin consent redirect reports neither consent nor an error")
	}
	r := &AdminConsentResult{Tenant: sanitize(q.Get("tenant"))}
	for _, s := range strings.Fields(q.Get("scope")) {
		r.Scopes = append(r.Scopes, sanitize(s))
	}
	return r, nil
}

// AdminConsent opens the admin consent page for the Client's tenant and
// waits for the redirect on the loopback listener (or a pasted URL).
// Microsoft refuses the common tenant for this, and so does this call.
func (c *Client) AdminConsent(ctx context.Context, o AdminConsentOptions) (*AdminConsentResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.Provider.Kind != provider.KindMicrosoft {
		return nil, fmt.Errorf("admin consent is a Microsoft feature; %s has none", c.Provider.Kind)
	}
	var state string
	q, err := c.interact(ctx, o.Interaction, o.RedirectURI, "admin consent",
		func(redirect string) (string, error) {
			u, st, err := c.AdminConsentURL(redirect, o.Scope, o.V1)
			state = st
			return u, err
		},
		func(q url.Values) error {
			if q.Get("error") == "" && q.Get("admin_consent") == "" && q.Get("tenant") == "" {
				return loopback.ErrNotCallback
			}
			_, err := ParseAdminConsent(q, state)
			if errors.Is(err, ErrStateMismatch) {
				return loopback.Ignore(err)
			}
			return err
		}, loopback.Pages{SuccessTitle: "Consent granted", FailureTitle: "Consent failed",
			SuccessMessage: "mailoauth received the administrator's consent. You can close this window and return to the terminal."})
	if err != nil {
		// Not wrapped: the *Error already names the admin consent
		// endpoint, and interact's own errors name the response.
		return nil, err
	}
	return ParseAdminConsent(q, state)
}
