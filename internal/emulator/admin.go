package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The admin API: the same operations as Go methods (for in-process tests
// and the demo) and as JSON over HTTP under /_emulator/ (for other
// processes). Documented in README.md.

// ErrNotFound is returned by admin methods for an unknown user, app,
// tenant or token.
var ErrNotFound = errors.New("not found")

// asError turns a nil *Error into a nil error (avoiding a typed nil).
func asError(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// Demo returns the scenario's demo values (tenant, client ids, users,
// passwords, the confidential app's secret).
func (e *Emulator) Demo() DemoValues {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.model.Demo
	d.Users = append([]string(nil), d.Users...)
	d.Passwords = append([]string(nil), d.Passwords...)
	return d
}

// ApproveDeviceCodeAs approves a pending device code as the user with this
// UPN, without the HTML page (consent is recorded as if accepted).
func (e *Emulator) ApproveDeviceCodeAs(userCode, upn string) error {
	e.mu.Lock()
	u := e.model.userByUPN(upn)
	e.mu.Unlock()
	if u == nil {
		return fmt.Errorf("user %s: %w", upn, ErrNotFound)
	}
	return asError(e.ApproveDeviceCode(userCode, u))
}

// DenyDeviceCodeAs declines a pending device code (the poll then gets
// authorization_declined).
func (e *Emulator) DenyDeviceCodeAs(userCode string) error {
	return asError(e.DenyDeviceCode(userCode))
}

// PendingUserCodes lists the user codes of device authorizations not yet
// approved or declined, so a test can approve the one MSAL started without
// reading MSAL's message.
func (e *Emulator) PendingUserCodes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for c, dc := range e.userCodes {
		if !dc.Approved && !dc.Declined {
			out = append(out, c)
		}
	}
	return out
}

// ExpireToken makes an access token expired now, or a refresh token
// inactive for 90 days (its next use gets AADSTS700082).
func (e *Emulator) ExpireToken(tok string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if at := e.access[tok]; at != nil {
		at.ExpiresAt = now
		return nil
	}
	if rt := e.refresh[tok]; rt != nil {
		rt.LastUsed = now.Add(-refreshInactivity)
		return nil
	}
	return fmt.Errorf("token: %w", ErrNotFound)
}

// ExpireAllAccessTokens expires every issued access token, for tests that
// drive a client's refresh path (MSAL's AcquireTokenSilent).
func (e *Emulator) ExpireAllAccessTokens() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for _, at := range e.access {
		at.ExpiresAt = now
	}
	return len(e.access)
}

// RevokeToken revokes an access token (Lookup reports it revoked) or a
// refresh token (its next use gets AADSTS50173).
func (e *Emulator) RevokeToken(tok string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if at := e.access[tok]; at != nil {
		at.Revoked = true
		return nil
	}
	if rt := e.refresh[tok]; rt != nil {
		rt.Revoked = true
		return nil
	}
	return fmt.Errorf("token: %w", ErrNotFound)
}

// RevokeUserSessions is "revoke sessions" / a password reset: every refresh
// token of the user issued before now gets AADSTS50173.
func (e *Emulator) RevokeUserSessions(upn string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.model.userByUPN(upn)
	if u == nil {
		return fmt.Errorf("user %s: %w", upn, ErrNotFound)
	}
	u.TokensValidFrom = e.now().Add(time.Nanosecond)
	return nil
}

// Settings returns the current global switches.
func (e *Emulator) Settings() Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.model.Settings
}

// UpdateSettings changes the global switches (throttle, slow_down, pinned
// lifetimes, …) through f.
func (e *Emulator) UpdateSettings(f func(*Settings)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.model.Settings
	f(&s)
	if Clouds[s.LoopbackCloud] == nil {
		return fmt.Errorf("unknown loopback_cloud %q", s.LoopbackCloud)
	}
	s.fillDefaults()
	e.model.Settings = s
	return nil
}

// UserUpdate changes a user; nil fields stay as they are.
type UserUpdate struct {
	User        string  `json:"user"`
	MFARequired *bool   `json:"mfa_required,omitempty"`
	CABlocked   *bool   `json:"ca_blocked,omitempty"`
	Disabled    *bool   `json:"disabled,omitempty"`
	Admin       *bool   `json:"admin,omitempty"`
	Password    *string `json:"password,omitempty"`
	Mailbox     *bool   `json:"mailbox,omitempty"`
	SMTPAuth    *string `json:"smtp_auth,omitempty"` // "", "enabled", "disabled"
}

// UpdateUser applies u.
func (e *Emulator) UpdateUser(up UserUpdate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.model.userByUPN(up.User)
	if u == nil {
		return fmt.Errorf("user %s: %w", up.User, ErrNotFound)
	}
	if up.SMTPAuth != nil {
		switch *up.SMTPAuth {
		case "", "enabled", "disabled":
			u.SMTPAuth = *up.SMTPAuth
		default:
			return fmt.Errorf("smtp_auth must be \"\", \"enabled\" or \"disabled\"")
		}
	}
	setBool(&u.MFARequired, up.MFARequired)
	setBool(&u.CABlocked, up.CABlocked)
	setBool(&u.Disabled, up.Disabled)
	setBool(&u.Admin, up.Admin)
	setBool(&u.Mailbox, up.Mailbox)
	if up.Password != nil {
		u.Password = *up.Password
		u.TokensValidFrom = e.now().Add(time.Nanosecond) // a password change revokes refresh tokens
	}
	return nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// AppUpdate changes an app registration; nil fields stay as they are.
type AppUpdate struct {
	ClientID          string `json:"client_id"`
	AllowPublicClient *bool  `json:"allow_public_client,omitempty"`
	// ExpireSecrets sets every secret's expiry to now (AADSTS7000222).
	ExpireSecrets bool `json:"expire_secrets,omitempty"`
	// RenewSecrets clears every secret's expiry.
	RenewSecrets bool `json:"renew_secrets,omitempty"`
}

// UpdateApp applies up.
func (e *Emulator) UpdateApp(up AppUpdate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.model.app(up.ClientID)
	if a == nil {
		return fmt.Errorf("app %s: %w", up.ClientID, ErrNotFound)
	}
	setBool(&a.AllowPublicClient, up.AllowPublicClient)
	for _, s := range a.Secrets {
		if up.ExpireSecrets {
			s.Expires = e.now()
		}
		if up.RenewSecrets {
			s.Expires = time.Time{}
		}
	}
	return nil
}

// TenantUpdate changes a tenant; nil fields stay as they are.
type TenantUpdate struct {
	Tenant              string `json:"tenant"` // id or domain
	SMTPAuth            *bool  `json:"smtp_auth,omitempty"`
	UserConsentDisabled *bool  `json:"user_consent_disabled,omitempty"`
}

// UpdateTenant applies up.
func (e *Emulator) UpdateTenant(up TenantUpdate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(up.Tenant)
	if t == nil {
		return fmt.Errorf("tenant %s: %w", up.Tenant, ErrNotFound)
	}
	setBool(&t.SMTPAuth, up.SMTPAuth)
	setBool(&t.UserConsentDisabled, up.UserConsentDisabled)
	return nil
}

func (e *Emulator) tenantLocked(s string) *Tenant {
	if t := e.model.tenantByID(s); t != nil {
		return t
	}
	return e.model.tenantByDomain(s)
}

// ConsentChange grants or revokes consent. With User set it is that user's
// consent, else admin consent (all users, and application permissions for
// .default scopes). Scope "" with Admin means every registered permission.
type ConsentChange struct {
	Tenant   string `json:"tenant"`
	ClientID string `json:"client_id"`
	User     string `json:"user,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Revoke   bool   `json:"revoke,omitempty"` // remove the app's whole consent (and service principal) in the tenant
}

// ChangeConsent applies c.
func (e *Emulator) ChangeConsent(c ConsentChange) error {
	e.mu.Lock()
	t := e.tenantLocked(c.Tenant)
	a := e.model.app(c.ClientID)
	var u *User
	if c.User != "" {
		u = e.model.userByUPN(c.User)
	}
	if t == nil || a == nil || (c.User != "" && u == nil) {
		e.mu.Unlock()
		return fmt.Errorf("consent %s/%s/%s: %w", c.Tenant, c.ClientID, c.User, ErrNotFound)
	}
	if c.Revoke {
		delete(e.model.Consents[t.ID], a.ClientID)
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	s, aerr := ParseScopes(t.Cloud, c.Scope)
	if aerr != nil {
		return aerr
	}
	if u != nil {
		e.RecordUserConsent(t, a, u, s)
	} else {
		e.RecordAdminConsent(t, a, s)
	}
	return nil
}

// ExchangeChange registers or removes an app's Exchange service principal
// in a tenant (New-ServicePrincipal), grants or removes FullAccess on a
// mailbox for an app (Add-MailboxPermission -User <service principal>) or
// FullAccess / SendAs for a user (Add-MailboxPermission -User <upn>,
// Add-RecipientPermission), and switches IMAP/POP per mailbox
// (Set-CASMailbox -ImapEnabled/-PopEnabled).
type ExchangeChange struct {
	Tenant           string `json:"tenant"`
	ClientID         string `json:"client_id,omitempty"` // grantee: an app's service principal …
	User             string `json:"user,omitempty"`      // … or a user (delegate)
	ServicePrincipal *bool  `json:"service_principal,omitempty"`
	Mailbox          string `json:"mailbox,omitempty"`
	FullAccess       *bool  `json:"full_access,omitempty"`
	SendAs           *bool  `json:"send_as,omitempty"` // users only
	IMAPEnabled      *bool  `json:"imap_enabled,omitempty"`
	POPEnabled       *bool  `json:"pop_enabled,omitempty"`
}

// ChangeExchange applies c.
func (e *Emulator) ChangeExchange(c ExchangeChange) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(c.Tenant)
	if t == nil {
		return fmt.Errorf("tenant %s: %w", c.Tenant, ErrNotFound)
	}
	cid := strings.ToLower(c.ClientID)
	if c.ServicePrincipal != nil && cid != "" {
		if *c.ServicePrincipal {
			t.ExchangeServicePrincipals[cid] = true
		} else {
			delete(t.ExchangeServicePrincipals, cid)
		}
	}
	if c.Mailbox == "" {
		return nil
	}
	u := e.model.userByUPN(c.Mailbox)
	if u == nil || u.Tenant != t {
		return fmt.Errorf("mailbox %s: %w", c.Mailbox, ErrNotFound)
	}
	setBool(&u.IMAPEnabled, c.IMAPEnabled)
	setBool(&u.POPEnabled, c.POPEnabled)
	setPerm := func(m map[string]bool, key string, v *bool) {
		if v == nil || key == "" {
			return
		}
		if *v {
			m[key] = true
		} else {
			delete(m, key)
		}
	}
	if c.User != "" {
		if e.model.userByUPN(c.User) == nil {
			return fmt.Errorf("user %s: %w", c.User, ErrNotFound)
		}
		delegate := strings.ToLower(c.User)
		setPerm(u.FullAccessUsers, delegate, c.FullAccess)
		setPerm(u.SendAsUsers, delegate, c.SendAs)
		return nil
	}
	if c.SendAs != nil {
		return errors.New("send_as is granted to users, not apps")
	}
	setPerm(u.FullAccess, cid, c.FullAccess)
	return nil
}

// MailboxInfo is what Exchange knows about a mailbox, for the emulator's
// mail and Graph servers (internal/emulator/exchange).
type MailboxInfo struct {
	UPN         string `json:"upn"`
	ObjectID    string `json:"object_id"`
	DisplayName string `json:"display_name"`
	TenantID    string `json:"tenant_id"`
	HasMailbox  bool   `json:"has_mailbox"`
	Shared      bool   `json:"shared"`
	SMTPAuth    bool   `json:"smtp_auth"` // effective: mailbox override, else tenant
	TenantSMTP  bool   `json:"tenant_smtp_auth"`
	// SMTPAuthOverride is the raw mailbox setting: "", "enabled" or
	// "disabled" (so a server can say "disabled for the Mailbox").
	SMTPAuthOverride    string   `json:"smtp_auth_override"`
	IMAPEnabled         bool     `json:"imap_enabled"`
	POPEnabled          bool     `json:"pop_enabled"`
	FullAccess          []string `json:"full_access"`           // client ids with FullAccess
	DelegatesFullAccess []string `json:"delegates_full_access"` // UPNs (lower-case) with FullAccess
	DelegatesSendAs     []string `json:"delegates_send_as"`     // UPNs (lower-case) with SendAs
}

func mailboxInfo(u *User) MailboxInfo {
	return MailboxInfo{UPN: u.UPN, ObjectID: u.ObjectID, DisplayName: u.DisplayName, TenantID: u.Tenant.ID,
		HasMailbox: u.Mailbox, Shared: u.Shared, SMTPAuth: u.SMTPAuthEnabled(), TenantSMTP: u.Tenant.SMTPAuth,
		SMTPAuthOverride: u.SMTPAuth, IMAPEnabled: u.IMAPEnabled, POPEnabled: u.POPEnabled,
		FullAccess: sortedKeys(u.FullAccess), DelegatesFullAccess: sortedKeys(u.FullAccessUsers),
		DelegatesSendAs: sortedKeys(u.SendAsUsers)}
}

// Mailbox returns the mailbox (user or shared) of upn.
func (e *Emulator) Mailbox(upn string) (MailboxInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.model.userByUPN(upn)
	if u == nil {
		return MailboxInfo{}, false
	}
	return mailboxInfo(u), true
}

// MailboxByID returns the mailbox whose user object id is oid (Graph's
// /users/{id} accepts either the id or the UPN).
func (e *Emulator) MailboxByID(oid string) (MailboxInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.model.userByOID(oid)
	if u == nil {
		return MailboxInfo{}, false
	}
	return mailboxInfo(u), true
}

// Mailboxes lists every user and shared mailbox that has a mailbox, in
// scenario order.
func (e *Emulator) Mailboxes() []MailboxInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []MailboxInfo
	for _, t := range e.model.Tenants {
		for _, u := range t.Users {
			if u.Mailbox {
				out = append(out, mailboxInfo(u))
			}
		}
	}
	return out
}

// ExchangeServicePrincipal reports whether clientID is registered in
// Exchange for tenantID (needed for app-only IMAP/POP/SMTP).
func (e *Emulator) ExchangeServicePrincipal(tenantID, clientID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(tenantID)
	return t != nil && t.ExchangeServicePrincipals[strings.ToLower(clientID)]
}

// Counts returns the request counters: one per endpoint ("token",
// "devicecode", "discovery", "keys", "authorize", …) and one per grant
// ("token:authorization_code", "token:refresh_token", …).
func (e *Emulator) Counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

// ResetCounts sets every counter to zero.
func (e *Emulator) ResetCounts() {
	e.mu.Lock()
	e.counts = map[string]int{}
	e.mu.Unlock()
}

// AppCertificate returns the PEM certificate and private key of an app's
// first certificate credential (the key only for generated certificates or
// when the scenario gave one), so tests and the demo can sign assertions.
func (e *Emulator) AppCertificate(clientID string) (certPEM, keyPEM []byte, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.model.app(clientID)
	if a == nil || len(a.Certificates) == 0 {
		return nil, nil, fmt.Errorf("certificate of app %s: %w", clientID, ErrNotFound)
	}
	c := a.Certificates[0]
	return append([]byte(nil), c.CertPEM...), append([]byte(nil), c.KeyPEM...), nil
}

// ---- HTTP ----

// adminRoutes registers the JSON admin API under /_emulator/.
func (e *Emulator) adminRoutes(mux *http.ServeMux) {
	get := func(pattern string, f func(r *http.Request) (any, error)) {
		e.route(mux, "GET "+pattern, "admin", func(w http.ResponseWriter, r *http.Request) { v, err := f(r); adminReply(w, v, err) })
	}
	post := func(pattern string, body func() any, f func(v any) (any, error)) {
		e.route(mux, "POST "+pattern, "admin", func(w http.ResponseWriter, r *http.Request) {
			v := body()
			if v != nil {
				dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
				dec.DisallowUnknownFields()
				if err := dec.Decode(v); err != nil {
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON body: " + err.Error()})
					return
				}
			}
			out, err := f(v)
			adminReply(w, out, err)
		})
	}
	ok := map[string]bool{"ok": true}
	type tokenBody struct {
		Token string `json:"token"`
	}
	type userCodeBody struct {
		UserCode string `json:"user_code"`
		User     string `json:"user"`
	}
	type userBody struct {
		User string `json:"user"`
	}
	get("/_emulator/demo", func(*http.Request) (any, error) { return e.Demo(), nil })
	get("/_emulator/settings", func(*http.Request) (any, error) { return e.Settings(), nil })
	post("/_emulator/settings", func() any { s := e.Settings(); return &s }, func(v any) (any, error) {
		s := *v.(*Settings)
		if err := e.UpdateSettings(func(cur *Settings) { *cur = s }); err != nil {
			return nil, err
		}
		return e.Settings(), nil
	})
	get("/_emulator/counts", func(*http.Request) (any, error) { return e.Counts(), nil })
	post("/_emulator/counts/reset", func() any { return nil }, func(any) (any, error) { e.ResetCounts(); return ok, nil })
	get("/_emulator/devicecodes", func(*http.Request) (any, error) { return map[string]any{"user_codes": e.PendingUserCodes()}, nil })
	post("/_emulator/devicecode/approve", func() any { return &userCodeBody{} }, func(v any) (any, error) {
		b := v.(*userCodeBody)
		return ok, e.ApproveDeviceCodeAs(b.UserCode, b.User)
	})
	post("/_emulator/devicecode/deny", func() any { return &userCodeBody{} }, func(v any) (any, error) {
		return ok, e.DenyDeviceCodeAs(v.(*userCodeBody).UserCode)
	})
	post("/_emulator/tokens/expire", func() any { return &tokenBody{} }, func(v any) (any, error) {
		return ok, e.ExpireToken(v.(*tokenBody).Token)
	})
	post("/_emulator/tokens/expire-all", func() any { return nil }, func(any) (any, error) {
		return map[string]int{"expired": e.ExpireAllAccessTokens()}, nil
	})
	post("/_emulator/tokens/revoke", func() any { return &tokenBody{} }, func(v any) (any, error) {
		return ok, e.RevokeToken(v.(*tokenBody).Token)
	})
	post("/_emulator/tokens/lookup", func() any { return &tokenBody{} }, func(v any) (any, error) {
		at, found := e.Lookup(v.(*tokenBody).Token)
		if !found {
			return nil, fmt.Errorf("token: %w", ErrNotFound)
		}
		return map[string]any{"token": at, "active": at.ActiveAt(e.now())}, nil
	})
	post("/_emulator/users/revoke-sessions", func() any { return &userBody{} }, func(v any) (any, error) {
		return ok, e.RevokeUserSessions(v.(*userBody).User)
	})
	post("/_emulator/users/update", func() any { return &UserUpdate{} }, func(v any) (any, error) {
		return ok, e.UpdateUser(*v.(*UserUpdate))
	})
	post("/_emulator/apps/update", func() any { return &AppUpdate{} }, func(v any) (any, error) {
		return ok, e.UpdateApp(*v.(*AppUpdate))
	})
	post("/_emulator/tenants/update", func() any { return &TenantUpdate{} }, func(v any) (any, error) {
		return ok, e.UpdateTenant(*v.(*TenantUpdate))
	})
	post("/_emulator/consent", func() any { return &ConsentChange{} }, func(v any) (any, error) {
		return ok, e.ChangeConsent(*v.(*ConsentChange))
	})
	post("/_emulator/exchange", func() any { return &ExchangeChange{} }, func(v any) (any, error) {
		return ok, e.ChangeExchange(*v.(*ExchangeChange))
	})
	get("/_emulator/mailboxes", func(*http.Request) (any, error) { return e.Mailboxes(), nil })
	get("/_emulator/mailboxes/{upn}", func(r *http.Request) (any, error) {
		m, found := e.Mailbox(r.PathValue("upn"))
		if !found {
			return nil, fmt.Errorf("mailbox: %w", ErrNotFound)
		}
		return m, nil
	})
	e.route(mux, "GET /_emulator/apps/{client_id}/certificate", "admin", func(w http.ResponseWriter, r *http.Request) {
		certPEM, keyPEM, err := e.AppCertificate(r.PathValue("client_id"))
		if err != nil {
			adminReply(w, nil, err)
			return
		}
		if r.URL.Query().Get("format") == "pem" {
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(append(certPEM, keyPEM...))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"certificate_pem": string(certPEM), "private_key_pem": string(keyPEM)})
	})
}

func adminReply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrNotFound) {
			status = http.StatusNotFound
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, v)
}
