package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/provider"
)

// deviceServer scripts a device authorization server: the device
// endpoint's answer, then one answer per poll. It records when each poll
// arrived (synctest time).
type deviceServer struct {
	device map[string]any
	polls  []func(w http.ResponseWriter)

	mu       sync.Mutex
	pollAt   []time.Duration
	forms    []url.Values
	deviceRq url.Values
	start    time.Time
}

func (d *deviceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	d.mu.Lock()
	defer d.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/devicecode") || strings.HasSuffix(r.URL.Path, "/device/code") {
		d.deviceRq = r.PostForm
		writeJSON(w, 200, d.device)
		return
	}
	d.pollAt = append(d.pollAt, time.Since(d.start))
	d.forms = append(d.forms, r.PostForm)
	n := len(d.pollAt) - 1
	if n >= len(d.polls) {
		writeJSON(w, 400, map[string]any{"error": "authorization_pending"})
		return
	}
	d.polls[n](w)
}

func pending(w http.ResponseWriter) {
	writeJSON(w, 400, map[string]any{"error": "authorization_pending", "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.", "error_codes": []int{70016}})
}
func slowDown(w http.ResponseWriter) { writeJSON(w, 400, map[string]any{"error": "slow_down"}) }
func granted(w http.ResponseWriter) {
	writeJSON(w, 200, map[string]any{"access_token": "dev-at", "refresh_token": "dev-rt", "token_type": "Bearer", "expires_in": 3600, "scope": "https://outlook.office.com/IMAP.AccessAsUser.All"})
}
func failWith(code string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { writeJSON(w, 400, map[string]any{"error": code}) }
}

var msDevice = map[string]any{
	"device_code": "DC-secret", "user_code": "FSBFZMBKC", "verification_uri": "https://microsoft.com/devicelogin",
	"expires_in": 900, "interval": 5, "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FSBFZMBKC to authenticate.",
}

func TestDeviceFlow(t *testing.T) {
	tests := []struct {
		name       string
		kind       provider.Kind
		device     map[string]any
		polls      []func(http.ResponseWriter)
		wantPollAt []time.Duration
		wantErr    error
		wantErrStr string
	}{
		{"pending then granted", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){pending, pending, granted},
			[]time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}, nil, ""},
		{"slow_down adds 5s each time", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){slowDown, pending, slowDown, granted},
			[]time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 40 * time.Second}, nil, ""},
		{"declined", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){pending, failWith("authorization_declined")},
			[]time.Duration{5 * time.Second, 10 * time.Second}, ErrAccessDenied, "authorization_declined"},
		{"access denied", provider.KindGoogle, map[string]any{"device_code": "d", "user_code": "ABC-DEF", "verification_url": "https://www.google.com/device", "expires_in": 1800, "interval": 5},
			[]func(http.ResponseWriter){failWith("access_denied")}, []time.Duration{5 * time.Second}, ErrAccessDenied, "access_denied"},
		{"too many server errors", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){
			func(w http.ResponseWriter) { w.WriteHeader(500) }, func(w http.ResponseWriter) { w.WriteHeader(500) },
			func(w http.ResponseWriter) { w.WriteHeader(500) }, func(w http.ResponseWriter) { w.WriteHeader(500) }},
			[]time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 20 * time.Second}, nil, "HTTP 500: empty response"},
		{"expired_token", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){failWith("expired_token")},
			[]time.Duration{5 * time.Second}, ErrExpired, "expired_token"},
		{"deadline passes", provider.KindMicrosoft, map[string]any{"device_code": "d", "user_code": "U", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 12, "interval": 5},
			nil, []time.Duration{5 * time.Second, 10 * time.Second, 12 * time.Second /* a last chance at the deadline */}, ErrExpired, "expired before sign-in completed"},
		{"429 waits Retry-After on top of the interval", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){
			func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "20")
				writeJSON(w, 429, map[string]any{"error": "temporarily_unavailable"})
			}, granted},
			[]time.Duration{5 * time.Second, 30 * time.Second}, nil, ""},
		{"server errors are retried a few times", provider.KindMicrosoft, msDevice, []func(http.ResponseWriter){
			func(w http.ResponseWriter) { w.WriteHeader(503) }, func(w http.ResponseWriter) { w.WriteHeader(502) }, granted},
			[]time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ds := &deviceServer{device: tt.device, polls: tt.polls, start: time.Now()}
				var p *provider.Provider
				if tt.kind == provider.KindGoogle {
					p = provider.Google()
					p.Endpoints.DeviceAuthURL = "https://as.test/device/code"
					p.Endpoints.TokenURL = "https://as.test/token"
				} else {
					p, _ = provider.Microsoft(provider.MicrosoftOptions{Authority: "https://as.test"})
				}
				c := &Client{HTTP: &http.Client{Transport: handlerTransport{ds}}, Provider: p, ClientID: "cid"}
				scopes := []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"}
				if tt.kind == provider.KindGoogle {
					scopes = []string{"email"}
				}
				var prompt DevicePrompt
				tok, err := c.DeviceFlow(t.Context(), scopes, func(p DevicePrompt) { prompt = p })
				if tt.wantErr != nil || tt.wantErrStr != "" {
					if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantErrStr) {
						t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantErrStr)
					}
				} else if err != nil {
					t.Fatal(err)
				} else if tok.AccessToken != "dev-at" || tok.RefreshToken != "dev-rt" {
					t.Errorf("token = %+v", tok)
				}
				if diff := cmp.Diff(tt.wantPollAt[:min(len(tt.wantPollAt), len(ds.pollAt))], ds.pollAt); diff != "" {
					t.Errorf("poll times (-want +got):\n%s", diff)
				}
				if len(ds.pollAt) != len(tt.wantPollAt) {
					t.Errorf("polls = %v, want %v", ds.pollAt, tt.wantPollAt)
				}
				if prompt.UserCode == "" || prompt.VerificationURI == "" || prompt.Message == "" || prompt.Expiry.IsZero() {
					t.Errorf("prompt = %+v", prompt)
				}
				if diff := cmp.Diff(url.Values{"client_id": {"cid"}, "scope": {strings.Join(scopes, " ")}}, ds.deviceRq); diff != "" {
					t.Errorf("device request (-want +got):\n%s", diff)
				}
				for _, f := range ds.forms {
					want := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {tt.device["device_code"].(string)}, "client_id": {"cid"}}
					if diff := cmp.Diff(want, f); diff != "" {
						t.Errorf("poll form (-want +got):\n%s", diff)
					}
				}
			})
		})
	}
}

func TestDeviceFlowCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := &deviceServer{device: msDevice, start: time.Now()}
		p, _ := provider.Microsoft(provider.MicrosoftOptions{Authority: "https://as.test"})
		c := &Client{HTTP: &http.Client{Transport: handlerTransport{ds}}, Provider: p, ClientID: "cid"}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(12*time.Second, cancel) // Ctrl-C between polls
		_, err := c.DeviceFlow(ctx, []string{"openid"}, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(ds.pollAt) != 2 {
			t.Errorf("polls = %v, want 2", ds.pollAt)
		}
	})
}

func TestDeviceFlowGoogleMailRefused(t *testing.T) {
	ds := &deviceServer{device: msDevice}
	p := provider.Google()
	c := &Client{HTTP: &http.Client{Transport: handlerTransport{ds}}, Provider: p, ClientID: "cid"}
	_, err := c.DeviceFlow(context.Background(), []string{"https://mail.google.com/"}, nil)
	if err == nil || !strings.Contains(err.Error(), "does not allow the device flow") {
		t.Fatalf("err = %v", err)
	}
	if ds.deviceRq != nil {
		t.Error("a request was sent")
	}
}

func FuzzDecodeDeviceResponse(f *testing.F) {
	f.Add([]byte(`{"device_code":"d","user_code":"U","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"m"}`))
	f.Add([]byte(`{"device_code":"d","user_code":"U","verification_url":"https://www.google.com/device","expires_in":"1800","interval":"5"}`))
	f.Add([]byte(`{"device_code":"d","user_code":"U\u001b[2J","verification_uri":"javascript:alert(1)"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := DecodeDeviceResponse(body, fixedNow)
		if err != nil {
			return
		}
		if d.Interval <= 0 || !d.Expiry.After(fixedNow) {
			t.Fatalf("bad timing accepted: %+v", d)
		}
		if !strings.HasPrefix(d.VerificationURI, "http") {
			t.Fatalf("non-web verification uri accepted: %q", d.VerificationURI)
		}
		if strings.ContainsAny(d.Prompt().Message+d.UserCode, "\x1b\x07") {
			t.Fatalf("control characters reach the prompt")
		}
		if strings.Contains(d.String(), d.DeviceCode) && len(d.DeviceCode) > 12 && !strings.Contains(d.UserCode+d.VerificationURI, d.DeviceCode) {
			t.Fatalf("String() leaks the device code")
		}
	})
}

// TestDevicePollOnce: one request at once (no interval wait), the same
// form DevicePoll sends with the client's credential, and the server's
// answer unwrapped: *Error for pending, the token once granted.
func TestDevicePollOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := &deviceServer{device: msDevice, polls: []func(http.ResponseWriter){pending, granted}, start: time.Now()}
		p, _ := provider.Microsoft(provider.MicrosoftOptions{Authority: "https://as.test"})
		c := &Client{HTTP: &http.Client{Transport: handlerTransport{ds}}, Provider: p, ClientID: "cid", Auth: ClientSecret{Secret: "s3cret-value"}}
		d, err := c.DeviceAuthorize(t.Context(), []string{"openid"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.DevicePollOnce(t.Context(), d)
		oe, ok := err.(*Error)
		if !ok || oe.Code != "authorization_pending" || oe.FirstAADSTS() != 70016 {
			t.Fatalf("first poll: err = %#v, want the bare *Error authorization_pending", err)
		}
		tok, err := c.DevicePollOnce(t.Context(), d)
		if err != nil || tok.AccessToken != "dev-at" {
			t.Fatalf("second poll: %v, %v", tok, err)
		}
		if diff := cmp.Diff([]time.Duration{0, 0}, ds.pollAt); diff != "" {
			t.Errorf("poll times (-want +got):\n%s", diff)
		}
		want := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"DC-secret"},
			"client_id": {"cid"}, "client_secret": {"s3cret-value"}}
		if diff := cmp.Diff(want, ds.forms[0]); diff != "" {
			t.Errorf("poll form (-want +got):\n%s", diff)
		}
		if _, err := c.DevicePollOnce(t.Context(), &DeviceAuth{}); err == nil {
			t.Error("a poll without a device code was sent")
		}
	})
}
