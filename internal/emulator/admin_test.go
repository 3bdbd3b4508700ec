package emulator

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestAdminHTTPAPI(t *testing.T) {
	w := newWireEnv(t)
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		check  func(t *testing.T, r reply)
	}{
		{"demo", "GET", "/_emulator/demo", nil, 200, func(t *testing.T, r reply) {
			if r.str("tenant_id") != tContoso || r.str("confidential_client_secret") != secretC || r.str("tenant_domain") != "contoso.com" {
				t.Errorf("demo: %s", r.raw)
			}
		}},
		{"settings reject unknown keys", "POST", "/_emulator/settings", map[string]any{"throtle": true}, 400, nil},
		{"body over 1 MiB", "POST", "/_emulator/users/update", map[string]any{"user": strings.Repeat("a", 2<<20)}, 400, func(t *testing.T, r reply) {
			if !strings.Contains(r.str("error"), "bad JSON body") {
				t.Errorf("oversized body: %s", r.raw)
			}
		}},
		{"settings reject unknown cloud", "POST", "/_emulator/settings", map[string]any{"loopback_cloud": "mars"}, 400, nil},
		{"user update unknown user", "POST", "/_emulator/users/update", map[string]any{"user": "nobody@contoso.com"}, 404, nil},
		{"user update", "POST", "/_emulator/users/update", map[string]any{"user": "alice@contoso.com", "mfa_required": true}, 200, func(t *testing.T, _ reply) {
			if r := w.ropc(imapScope); r.code() != 50076 {
				t.Errorf("ROPC after MFA switch: %s", r.raw)
			}
		}},
		{"app update", "POST", "/_emulator/apps/update", map[string]any{"client_id": appN, "allow_public_client": true}, 200, func(t *testing.T, _ reply) {
			r := w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", appN, "scope", imapScope))
			p := w.post(tokenPath("contoso.com"), form("grant_type", grantDeviceShort, "client_id", appN, "device_code", r.str("device_code")))
			if p.code() != 70016 {
				t.Errorf("poll after enabling public client flows: %s", p.raw)
			}
		}},
		{"tenant update", "POST", "/_emulator/tenants/update", map[string]any{"tenant": "contoso.com", "smtp_auth": false}, 200, func(t *testing.T, _ reply) {
			if m, _ := w.e.Mailbox("alice@contoso.com"); m.SMTPAuth {
				t.Error("tenant switch not applied")
			}
			if m, _ := w.e.Mailbox("dave@contoso.com"); m.SMTPAuth {
				t.Error("mailbox override lost")
			}
		}},
		{"exchange", "POST", "/_emulator/exchange", map[string]any{"tenant": tContoso, "client_id": appC, "mailbox": "alice@contoso.com", "full_access": false}, 200, func(t *testing.T, _ reply) {
			if m, _ := w.e.Mailbox("alice@contoso.com"); len(m.FullAccess) != 0 {
				t.Errorf("full access not removed: %+v", m)
			}
			if !w.e.ExchangeServicePrincipal("contoso.com", appC) {
				t.Error("service principal lost")
			}
		}},
		{"mailbox", "GET", "/_emulator/mailboxes/dave@contoso.com", nil, 200, func(t *testing.T, r reply) {
			if r.body["smtp_auth"] != false || r.body["has_mailbox"] != true {
				t.Errorf("mailbox: %s", r.raw)
			}
		}},
		{"token lookup unknown", "POST", "/_emulator/tokens/lookup", map[string]any{"token": "nope"}, 404, nil},
		{"certificate", "GET", "/_emulator/apps/" + appC + "/certificate", nil, 200, func(t *testing.T, r reply) {
			if !strings.Contains(r.str("certificate_pem"), "BEGIN CERTIFICATE") || !strings.Contains(r.str("private_key_pem"), "BEGIN PRIVATE KEY") {
				t.Errorf("certificate: %s", r.raw)
			}
		}},
		{"certificate of an app without one", "GET", "/_emulator/apps/" + appP + "/certificate", nil, 404, nil},
		{"counts", "GET", "/_emulator/counts", nil, 200, func(t *testing.T, r reply) {
			if r.body["devicecode"] != 1.0 || r.body["token:device_code"] != 1.0 {
				t.Errorf("counts: %s", r.raw)
			}
		}},
		{"reset counts", "POST", "/_emulator/counts/reset", nil, 200, func(t *testing.T, r reply) {
			if c := w.e.Counts(); c["token"] != 0 {
				t.Errorf("counts after reset: %v", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r reply
			if tc.method == "GET" {
				r = w.get(tc.path)
			} else {
				r = w.postJSON(tc.path, tc.body)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	t.Run("lookup, expire and revoke an access token", func(t *testing.T) {
		w := newWireEnv(t)
		tok := w.ropc(imapScope).str("access_token")
		r := w.postJSON("/_emulator/tokens/lookup", map[string]string{"token": tok})
		if r.body["active"] != true {
			t.Fatalf("lookup: %s", r.raw)
		}
		w.postJSON("/_emulator/tokens/expire", map[string]string{"token": tok})
		if r := w.postJSON("/_emulator/tokens/lookup", map[string]string{"token": tok}); r.body["active"] != false {
			t.Errorf("after expire: %s", r.raw)
		}
		tok2 := w.ropc(imapScope).str("access_token")
		w.postJSON("/_emulator/tokens/revoke", map[string]string{"token": tok2})
		if at, _ := w.e.Lookup(tok2); !at.Revoked {
			t.Error("not revoked")
		}
		if r := w.postJSON("/_emulator/tokens/expire-all", nil); r.body["expired"] != 2.0 {
			t.Errorf("expire-all: %s", r.raw)
		}
	})
}

func TestServerTLSAndCloudHosts(t *testing.T) {
	srv := startTLS(t)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("URL = %s", srv.URL)
	}
	if b, _ := pem.Decode(srv.CAPEM()); b == nil || b.Type != "CERTIFICATE" {
		t.Fatal("CAPEM is not a PEM certificate")
	}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(srv.HTTPClient(), srv.URL+"/common/v2.0/.well-known/openid-configuration"); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	// Real host names verify against the CA and select the cloud.
	for host, want := range map[string]string{
		"login.microsoftonline.com":        `"msgraph_host":"graph.microsoft.com"`,
		"login.microsoftonline.us":         `"msgraph_host":"graph.microsoft.us"`,
		"login.partner.microsoftonline.cn": `"msgraph_host":"microsoftgraph.chinacloudapi.cn"`,
		"login.chinacloudapi.cn":           `"msgraph_host":"microsoftgraph.chinacloudapi.cn"`,
	} {
		code, body := get(srv.RedirectingHTTPClient(), "https://"+host+"/organizations/v2.0/.well-known/openid-configuration")
		if code != 200 || !strings.Contains(body, want) || !strings.Contains(body, `"issuer":"https://`+host+`/{tenantid}/v2.0"`) {
			t.Errorf("%s: %d %s", host, code, body)
		}
	}
	// An untrusting client fails the handshake.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}, Timeout: 5 * time.Second}
	if _, err := c.Get(srv.URL + "/common/discovery/v2.0/keys"); err == nil {
		t.Error("a client without the CA connected")
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "[::1]:0", "example.com:0"} {
		if srv, err := Start(ServerOptions{Listen: addr}); err == nil {
			srv.Close()
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	cases := []struct{ in, want string }{
		{"127.0.0.1:8443", "127.0.0.1:8443"},
		{"localhost:0", "127.0.0.1:0"},
		{"LocalHost:99", "127.0.0.1:99"},
		{"127.0.0.2:1", "127.0.0.2:1"},
		{"0.0.0.0:0", ""},
		{":0", ""},
		{"[::1]:0", ""},
		{"8443", ""},
		{"example.com:0", ""},
	}
	for _, tc := range cases {
		got, err := LoopbackAddr(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("LoopbackAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	srv, err := Start(ServerOptions{Listen: "localhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Errorf("localhost listener at %s, want 127.0.0.1", srv.URL)
	}
}

func TestStartPlainHTTP(t *testing.T) {
	srv, err := Start(ServerOptions{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/common/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(srv.URL, "http://") {
		t.Errorf("%s: %d", srv.URL, resp.StatusCode)
	}
	if got := srv.Services(); len(got) != 1 || got[0].Name != "identity" || got[0].URL != srv.URL {
		t.Errorf("Services = %+v", got)
	}
}

func TestMailboxes(t *testing.T) {
	w := newWireEnv(t)
	m, ok := w.e.Mailbox("SALES@contoso.com")
	want := MailboxInfo{UPN: "sales@contoso.com", ObjectID: m.ObjectID, DisplayName: "Sales", TenantID: tContoso,
		HasMailbox: true, Shared: true, SMTPAuth: true, TenantSMTP: true, IMAPEnabled: true,
		DelegatesFullAccess: []string{"alice@contoso.com"}, DelegatesSendAs: []string{"alice@contoso.com"}}
	if diff := cmp.Diff(want, m, cmpopts.EquateEmpty()); !ok || diff != "" {
		t.Errorf("Mailbox (-want +got):\n%s", diff)
	}
	if byID, ok := w.e.MailboxByID(m.ObjectID); !ok || byID.UPN != m.UPN {
		t.Errorf("MailboxByID = %+v, %v", byID, ok)
	}
	if got := len(w.e.Mailboxes()); got != 7 {
		t.Errorf("Mailboxes: %d, want 7", got)
	}
	// A shared mailbox cannot sign in.
	dc := w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", appP, "scope", imapScope))
	var ae *Error
	if err := w.e.ApproveDeviceCodeAs(dc.str("user_code"), "sales@contoso.com"); !asAAD(err, &ae) || ae.Code != 50057 {
		t.Errorf("shared mailbox sign-in: %v, want AADSTS50057", err)
	}
	// Delegates and switches through the admin API.
	r := w.postJSON("/_emulator/exchange", map[string]any{"tenant": "contoso.com", "user": "bob@contoso.com", "mailbox": "sales@contoso.com", "full_access": true, "send_as": true, "imap_enabled": false})
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	m, _ = w.e.Mailbox("sales@contoso.com")
	if diff := cmp.Diff([]string{"alice@contoso.com", "bob@contoso.com"}, m.DelegatesSendAs); diff != "" || m.IMAPEnabled {
		t.Errorf("after change: %+v", m)
	}
	if r := w.postJSON("/_emulator/exchange", map[string]any{"tenant": "contoso.com", "client_id": appC, "mailbox": "sales@contoso.com", "send_as": true}); r.status != 400 {
		t.Errorf("send_as for an app: %s", r.raw)
	}
	if r := w.get("/_emulator/mailboxes/dave@contoso.com"); r.str("smtp_auth_override") != "disabled" {
		t.Errorf("override: %s", r.raw)
	}
}
