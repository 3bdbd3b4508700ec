package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mailoauth/mailoauth/internal/tomlpos"
)

//go:embed default.toml
var defaultScenario []byte

// DefaultScenario returns the built-in scenario's TOML text.
func DefaultScenario() []byte { return bytes.Clone(defaultScenario) }

// Scenario is the TOML file format that drives the emulator (documented in
// README.md). Unknown keys are rejected, so a typo cannot silently turn a
// setting off.
type Scenario struct {
	Demo     scenarioDemo      `toml:"demo"`
	Settings Settings          `toml:"settings"`
	Tenants  []scenarioTenant  `toml:"tenants"`
	Apps     []scenarioApp     `toml:"apps"`
	Consents []scenarioConsent `toml:"consents"`
	dir      string            // folder of the file, for relative cert paths
	file     string            // the file, for error messages; "" if not read from one
}

type scenarioDemo struct {
	Tenant          string   `toml:"tenant"`
	PublicApp       string   `toml:"public_app"`
	ConfidentialApp string   `toml:"confidential_app"`
	Users           []string `toml:"users"`
}

type scenarioTenant struct {
	ID                        string         `toml:"id"`
	Name                      string         `toml:"name"`
	Domains                   []string       `toml:"domains"`
	Cloud                     string         `toml:"cloud"`
	Consumer                  bool           `toml:"consumer"`
	UserConsentDisabled       bool           `toml:"user_consent_disabled"`
	SMTPAuth                  *bool          `toml:"smtp_auth"`
	ExchangeServicePrincipals []string       `toml:"exchange_service_principals"`
	Users                     []scenarioUser `toml:"users"`
	SharedMailboxes           []scenarioUser `toml:"shared_mailboxes"`
}

type scenarioUser struct {
	UPN             string   `toml:"upn"`
	ObjectID        string   `toml:"object_id"`
	Name            string   `toml:"name"`
	Password        string   `toml:"password"`
	MFARequired     bool     `toml:"mfa_required"`
	CABlocked       bool     `toml:"ca_blocked"`
	Disabled        bool     `toml:"disabled"`
	Admin           bool     `toml:"admin"`
	Mailbox         *bool    `toml:"mailbox"`
	SMTPAuth        string   `toml:"smtp_auth"`
	FullAccess      []string `toml:"full_access"`
	FullAccessUsers []string `toml:"full_access_users"`
	SendAsUsers     []string `toml:"send_as_users"`
	IMAPEnabled     *bool    `toml:"imap_enabled"`
	POPEnabled      *bool    `toml:"pop_enabled"`
}

type scenarioApp struct {
	ClientID               string           `toml:"client_id"`
	Name                   string           `toml:"name"`
	HomeTenant             string           `toml:"home_tenant"`
	SignInAudience         string           `toml:"sign_in_audience"`
	AllowPublicClient      bool             `toml:"allow_public_client"`
	WebRedirectURIs        []string         `toml:"web_redirect_uris"`
	SPARedirectURIs        []string         `toml:"spa_redirect_uris"`
	PublicRedirectURIs     []string         `toml:"public_redirect_uris"`
	DelegatedPermissions   []string         `toml:"delegated_permissions"`
	ApplicationPermissions []string         `toml:"application_permissions"`
	Secrets                []scenarioSecret `toml:"secrets"`
	Certificates           []scenarioCert   `toml:"certificates"`
}

type scenarioSecret struct {
	ID      string    `toml:"id"`
	Value   string    `toml:"value"`
	Expires time.Time `toml:"expires"`
}

type scenarioCert struct {
	Generate bool   `toml:"generate"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

type scenarioConsent struct {
	Tenant    string   `toml:"tenant"`
	ClientID  string   `toml:"client_id"`
	Admin     bool     `toml:"admin"`
	User      string   `toml:"user"`
	Delegated []string `toml:"delegated"`
	Roles     []string `toml:"roles"`
}

// ErrScenario is wrapped by every error about what a scenario file says
// (syntax, unknown keys, values), as opposed to not being able to read it.
var ErrScenario = errors.New("invalid scenario")

// ParseScenario decodes a scenario file's text. dir resolves relative
// certificate paths. Unknown keys are an error naming each with its line.
func ParseScenario(data []byte, dir string) (*Scenario, error) { return parseScenario("", data, dir) }

// LoadScenario reads and parses a scenario file; its errors start with
// FILE:LINE where the line is known.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return parseScenario(path, data, filepath.Dir(path))
}

// parseScenario decodes data read from file ("" when not from a file).
func parseScenario(file string, data []byte, dir string) (*Scenario, error) {
	at := func(line int) string {
		switch {
		case file != "" && line > 0:
			return fmt.Sprintf("%s:%d", file, line)
		case file != "":
			return file
		case line > 0:
			return fmt.Sprintf("line %d", line)
		}
		return "scenario"
	}
	var s Scenario
	md, err := toml.Decode(string(data), &s)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s: %s", ErrScenario, at(pe.Position.Line), pe.Message)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrScenario, at(0), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		// BurntSushi/toml names unknown keys but not where they are.
		lines := tomlpos.KeyLines(string(data))
		msgs := make([]string, len(und))
		for i, k := range und {
			msgs[i] = fmt.Sprintf("%s: %s: unknown key (see internal/emulator/README.md for the scenario keys)", at(lines[k.String()]), k)
		}
		return nil, fmt.Errorf("%w:\n%s", ErrScenario, strings.Join(msgs, "\n"))
	}
	s.dir, s.file = dir, file
	return &s, nil
}

// generatedKeys caches generated app-certificate keys per client id for the
// life of the process: RSA key generation is slow under -race, and tests
// start many emulators. Each emulator still builds its own certificate.
var generatedKeys sync.Map // client id → *rsa.PrivateKey

func generatedKey(clientID string) (*rsa.PrivateKey, error) {
	if k, ok := generatedKeys.Load(clientID); ok {
		return k.(*rsa.PrivateKey), nil
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate app key: %w", err)
	}
	actual, _ := generatedKeys.LoadOrStore(clientID, k)
	return actual.(*rsa.PrivateKey), nil
}

// buildModel checks the scenario and turns it into the directory model.
func (s *Scenario) buildModel(now time.Time) (*Model, error) {
	m := &Model{Settings: s.Settings, Consents: map[string]map[string]*Consent{}}
	m.Settings.fillDefaults()
	if Clouds[m.Settings.LoopbackCloud] == nil {
		return nil, fmt.Errorf("settings: unknown loopback_cloud %q", m.Settings.LoopbackCloud)
	}
	for i, st := range s.Tenants {
		if !isGUID(st.ID) {
			return nil, fmt.Errorf("tenants[%d]: id %q is not a GUID", i, st.ID)
		}
		cloud := "global"
		if st.Cloud != "" {
			cloud = st.Cloud
		}
		c := Clouds[cloud]
		if c == nil {
			return nil, fmt.Errorf("tenant %s: unknown cloud %q (global, usgov, usgov-dod, china)", st.ID, st.Cloud)
		}
		if m.tenantByID(st.ID) != nil {
			return nil, fmt.Errorf("tenant %s: defined twice", st.ID)
		}
		t := &Tenant{ID: strings.ToLower(st.ID), Name: st.Name, Domains: st.Domains, Cloud: c, Consumer: st.Consumer,
			UserConsentDisabled: st.UserConsentDisabled, SMTPAuth: st.SMTPAuth == nil || *st.SMTPAuth, ExchangeServicePrincipals: map[string]bool{}}
		for _, d := range st.Domains {
			if m.tenantByDomain(d) != nil {
				return nil, fmt.Errorf("tenant %s: domain %q is already verified by another tenant", st.ID, d)
			}
		}
		for _, cid := range st.ExchangeServicePrincipals {
			t.ExchangeServicePrincipals[strings.ToLower(cid)] = true
		}
		m.Tenants = append(m.Tenants, t)
		all := append(append([]scenarioUser(nil), st.Users...), st.SharedMailboxes...)
		for j, su := range all {
			shared := j >= len(st.Users)
			if su.UPN == "" {
				return nil, fmt.Errorf("tenant %s: users[%d]: upn is required", st.ID, j)
			}
			if shared && (su.Password != "" || su.MFARequired || su.Admin) {
				return nil, fmt.Errorf("shared mailbox %s: shared mailboxes cannot sign in (no password, mfa_required or admin)", su.UPN)
			}
			if m.userByUPN(su.UPN) != nil {
				return nil, fmt.Errorf("user %s: defined twice", su.UPN)
			}
			switch su.SMTPAuth {
			case "", "enabled", "disabled":
			default:
				return nil, fmt.Errorf("user %s: smtp_auth must be \"\", \"enabled\" or \"disabled\"", su.UPN)
			}
			oid := su.ObjectID
			if oid == "" {
				oid = derivedGUID("user", t.ID, strings.ToLower(su.UPN))
			} else if !isGUID(oid) {
				return nil, fmt.Errorf("user %s: object_id %q is not a GUID", su.UPN, oid)
			}
			u := &User{ObjectID: strings.ToLower(oid), UPN: su.UPN, DisplayName: su.Name, Password: su.Password,
				MFARequired: su.MFARequired, CABlocked: su.CABlocked, Disabled: su.Disabled || shared, Admin: su.Admin,
				Mailbox: su.Mailbox == nil || *su.Mailbox, SMTPAuth: su.SMTPAuth, FullAccess: map[string]bool{},
				FullAccessUsers: map[string]bool{}, SendAsUsers: map[string]bool{}, Shared: shared,
				IMAPEnabled: su.IMAPEnabled == nil || *su.IMAPEnabled, POPEnabled: su.POPEnabled == nil || *su.POPEnabled, Tenant: t}
			if u.DisplayName == "" {
				u.DisplayName = su.UPN
			}
			for _, cid := range su.FullAccess {
				u.FullAccess[strings.ToLower(cid)] = true
			}
			for _, upn := range su.FullAccessUsers {
				u.FullAccessUsers[strings.ToLower(upn)] = true
			}
			for _, upn := range su.SendAsUsers {
				u.SendAsUsers[strings.ToLower(upn)] = true
			}
			t.Users = append(t.Users, u)
		}
	}
	for _, t := range m.Tenants {
		for _, u := range t.Users {
			for upn := range u.FullAccessUsers {
				if m.userByUPN(upn) == nil {
					return nil, fmt.Errorf("mailbox %s: full_access_users: unknown user %q", u.UPN, upn)
				}
			}
			for upn := range u.SendAsUsers {
				if m.userByUPN(upn) == nil {
					return nil, fmt.Errorf("mailbox %s: send_as_users: unknown user %q", u.UPN, upn)
				}
			}
		}
	}
	for i, sa := range s.Apps {
		if !isGUID(sa.ClientID) {
			return nil, fmt.Errorf("apps[%d]: client_id %q is not a GUID", i, sa.ClientID)
		}
		if m.app(sa.ClientID) != nil {
			return nil, fmt.Errorf("app %s: defined twice", sa.ClientID)
		}
		home := m.tenantByID(sa.HomeTenant)
		if home == nil {
			home = m.tenantByDomain(sa.HomeTenant)
		}
		if home == nil {
			return nil, fmt.Errorf("app %s: home_tenant %q is not a tenant of the scenario", sa.ClientID, sa.HomeTenant)
		}
		aud := sa.SignInAudience
		if aud == "" {
			aud = AudienceMyOrg
		}
		switch aud {
		case AudienceMyOrg, AudienceMultipleOrgs, AudienceOrgsAndMSA, AudiencePersonalOnly:
		default:
			return nil, fmt.Errorf("app %s: unknown sign_in_audience %q", sa.ClientID, aud)
		}
		a := &App{ClientID: strings.ToLower(sa.ClientID), Name: sa.Name, HomeTenant: home, SignInAudience: aud,
			AllowPublicClient: sa.AllowPublicClient,
			RedirectURIs: map[Platform][]string{PlatformWeb: sa.WebRedirectURIs, PlatformSPA: sa.SPARedirectURIs,
				PlatformPublic: sa.PublicRedirectURIs},
			Delegated: map[string][]string{}, AppRoles: map[string][]string{}}
		if a.Name == "" {
			a.Name = a.ClientID
		}
		for _, p := range sa.DelegatedPermissions {
			res, perm, err := parsePermission(home.Cloud, p, false)
			if err != nil {
				return nil, fmt.Errorf("app %s: delegated_permissions: %w", sa.ClientID, err)
			}
			a.Delegated[res.AppID] = append(a.Delegated[res.AppID], perm)
		}
		for _, p := range sa.ApplicationPermissions {
			res, perm, err := parsePermission(home.Cloud, p, true)
			if err != nil {
				return nil, fmt.Errorf("app %s: application_permissions: %w", sa.ClientID, err)
			}
			a.AppRoles[res.AppID] = append(a.AppRoles[res.AppID], perm)
		}
		for j, ss := range sa.Secrets {
			if ss.Value == "" {
				return nil, fmt.Errorf("app %s: secrets[%d]: value is required", sa.ClientID, j)
			}
			id := ss.ID
			if id == "" {
				id = derivedGUID("secret", a.ClientID, fmt.Sprint(j))
			}
			a.Secrets = append(a.Secrets, &Secret{ID: strings.ToLower(id), Value: ss.Value, Expires: ss.Expires})
		}
		for j, sc := range sa.Certificates {
			ac, err := s.loadCert(a, sc, now)
			if err != nil {
				return nil, fmt.Errorf("app %s: certificates[%d]: %w", sa.ClientID, j, err)
			}
			a.Certificates = append(a.Certificates, ac)
		}
		m.Apps = append(m.Apps, a)
	}
	for i, sc := range s.Consents {
		t := m.tenantByID(sc.Tenant)
		if t == nil {
			t = m.tenantByDomain(sc.Tenant)
		}
		if t == nil {
			return nil, fmt.Errorf("consents[%d]: unknown tenant %q", i, sc.Tenant)
		}
		a := m.app(sc.ClientID)
		if a == nil {
			return nil, fmt.Errorf("consents[%d]: unknown client_id %q", i, sc.ClientID)
		}
		if !a.MultiTenant() && a.HomeTenant != t {
			return nil, fmt.Errorf("consents[%d]: app %s is single-tenant and cannot be consented in %s", i, a.ClientID, t.ID)
		}
		c := m.consent(t.ID, a.ClientID, true)
		if sc.Admin {
			grantAllRegistered(c, a)
		}
		var perUser map[string]map[string]bool
		if sc.User != "" {
			u := m.userByUPN(sc.User)
			if u == nil || u.Tenant != t {
				return nil, fmt.Errorf("consents[%d]: user %q is not in tenant %s", i, sc.User, t.ID)
			}
			if c.Users[u.ObjectID] == nil {
				c.Users[u.ObjectID] = map[string]map[string]bool{}
			}
			perUser = c.Users[u.ObjectID]
		}
		for _, p := range sc.Delegated {
			res, perm, err := parsePermission(t.Cloud, p, false)
			if err != nil {
				return nil, fmt.Errorf("consents[%d]: %w", i, err)
			}
			if perUser != nil {
				addPerm(perUser, res.AppID, perm)
			} else {
				addPerm(c.AdminDelegated, res.AppID, perm)
			}
		}
		for _, p := range sc.Roles {
			if perUser != nil {
				return nil, fmt.Errorf("consents[%d]: roles need admin consent, not a user", i)
			}
			res, perm, err := parsePermission(t.Cloud, p, true)
			if err != nil {
				return nil, fmt.Errorf("consents[%d]: %w", i, err)
			}
			addPerm(c.AdminRoles, res.AppID, perm)
		}
	}
	// Demo values.
	d := DemoValues{TenantID: strings.ToLower(s.Demo.Tenant), PublicClientID: strings.ToLower(s.Demo.PublicApp),
		ConfidentialID: strings.ToLower(s.Demo.ConfidentialApp), Users: s.Demo.Users}
	if t := m.tenantByID(d.TenantID); t != nil && len(t.Domains) > 0 {
		d.TenantDomain = t.Domains[len(t.Domains)-1]
	}
	if a := m.app(d.ConfidentialID); a != nil && len(a.Secrets) > 0 {
		d.ConfidentialSecret = a.Secrets[0].Value
	}
	for _, upn := range d.Users {
		u := m.userByUPN(upn)
		if u == nil {
			return nil, fmt.Errorf("demo: unknown user %q", upn)
		}
		d.Passwords = append(d.Passwords, u.Password)
	}
	m.Demo = d
	return m, nil
}

// grantAllRegistered records admin consent to every permission a registers.
func grantAllRegistered(c *Consent, a *App) {
	for res, perms := range a.Delegated {
		for _, p := range perms {
			addPerm(c.AdminDelegated, res, p)
		}
	}
	for res, perms := range a.AppRoles {
		for _, p := range perms {
			addPerm(c.AdminRoles, res, p)
		}
	}
}

// parsePermission splits "https://host/Name" (or a bare Graph name) into the
// resource and the permission name, checking the resource defines it.
func parsePermission(c *Cloud, s string, role bool) (*Resource, string, error) {
	ident, perm := GraphAppID, s
	if i := strings.LastIndex(s, "/"); i >= 0 {
		ident, perm = s[:i], s[i+1:]
	}
	res, _ := resolveResource(c, ident)
	if res == nil {
		return nil, "", fmt.Errorf("unknown resource in %q", s)
	}
	list := res.Delegated
	if role {
		list = res.AppRoles
	}
	canon, ok := containsFold(list, perm)
	if !ok {
		return nil, "", fmt.Errorf("%s defines no %s permission %q", res.Name, map[bool]string{true: "application", false: "delegated"}[role], perm)
	}
	return res, canon, nil
}

// loadCert builds one certificate credential: generated, or read from PEM.
func (s *Scenario) loadCert(a *App, sc scenarioCert, now time.Time) (*AppCert, error) {
	if sc.Generate {
		if sc.CertFile != "" || sc.KeyFile != "" {
			return nil, errors.New("generate and cert_file are exclusive")
		}
		key, err := generatedKey(a.ClientID)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano()),
			Subject:      pkix.Name{CommonName: a.Name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.AddDate(2, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, fmt.Errorf("create app certificate: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse app certificate: %w", err)
		}
		ac := newAppCert(cert, key)
		ac.Generate = true
		ac.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("marshal app key: %w", err)
		}
		ac.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
		return ac, nil
	}
	if sc.CertFile == "" {
		return nil, errors.New("set generate = true or cert_file")
	}
	path := sc.CertFile
	if !filepath.IsAbs(path) && s.dir != "" {
		path = filepath.Join(s.dir, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	if sc.KeyFile != "" {
		kp := sc.KeyFile
		if !filepath.IsAbs(kp) && s.dir != "" {
			kp = filepath.Join(s.dir, kp)
		}
		kdata, err := os.ReadFile(kp)
		if err != nil {
			return nil, fmt.Errorf("read key: %w", err)
		}
		data = append(append(data, '\n'), kdata...)
	}
	return parseCertPEM(data)
}

// parseCertPEM reads the first certificate and an optional RSA private key.
func parseCertPEM(data []byte) (*AppCert, error) {
	var cert *x509.Certificate
	var key *rsa.PrivateKey
	var certPEM, keyPEM []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if cert == nil {
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("parse certificate: %w", err)
				}
				cert = c
				certPEM = pem.EncodeToMemory(b)
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY":
			var k any
			var err error
			if b.Type == "PRIVATE KEY" {
				k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
			} else {
				k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
			}
			if err != nil {
				return nil, fmt.Errorf("parse key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, errors.New("only RSA keys are supported")
			}
			key = rk
			keyPEM = pem.EncodeToMemory(b)
		}
	}
	if cert == nil {
		return nil, errors.New("no CERTIFICATE block")
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("certificate key is not RSA")
	}
	ac := newAppCert(cert, key)
	ac.CertPEM, ac.KeyPEM = certPEM, keyPEM
	return ac, nil
}

// sortedKeys returns the keys of a set in order, for stable output.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
