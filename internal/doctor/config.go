package doctor

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
)

// secretTimeout bounds one secret reference (a cmd: may prompt a GPG agent).
const secretTimeout = 30 * time.Second

// certWarnBefore: a certificate expiring this soon is a warning.
const certWarnBefore = 30 * 24 * time.Hour

// guidRE matches a bare GUID: what the "Secret ID" column of an app
// registration's secrets looks like, never a secret's value.
var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// checkConfig is step 1. It reports false when nothing else can be checked.
func (r *run) checkConfig(ctx context.Context, name string) bool {
	cfg, err := config.Load(r.opts.ConfigFile)
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			r.fail(StepConfig, "config file", p.String(),
				"correct that line of the config file (mailoauth config check lists every problem)", nil)
		}
		return false
	case errors.Is(err, config.ErrNotFound):
		r.fail(StepConfig, "config file", "there is no config file at "+r.opts.ConfigFile,
			"create it (see the README's Configuration section), or name another with --config or MAILOAUTH_CONFIG", err)
		return false
	case err != nil:
		r.fail(StepConfig, "config file", "the config file cannot be read: "+err.Error(),
			"check the file's permissions", err)
		return false
	}
	r.cfg = cfg
	for _, w := range cfg.Warnings {
		r.warn(StepConfig, "config file", w.String(), "see the warning's line in the config file")
	}
	acct, err := cfg.Account(name)
	if err != nil {
		r.fail(StepConfig, "account", err.Error(), "use one of the configured names, or add an [accounts."+name+"] table", err)
		return false
	}
	r.acct = acct
	desc := fmt.Sprintf("%s in %s is valid: provider %s, flow %s", name, cfg.File, acct.Provider, acct.Flow)
	if acct.Provider == config.Microsoft {
		desc += ", tenant " + acct.Tenant
		if acct.Cloud != "global" {
			desc += " (" + acct.Cloud + " cloud)"
		}
	}
	r.ok(StepConfig, "account", desc)

	r.checkSecrets(ctx)
	r.checkCertificate(ctx)
	r.checkCAFile()
	r.checkFlow()
	return true
}

// checkSecrets resolves every secret reference the account and the store
// use, without ever showing a value.
func (r *run) checkSecrets(ctx context.Context) {
	a := r.acct
	type ref struct {
		s     config.Secret
		creds bool // needed for the app's credential
	}
	for _, x := range []ref{{a.ClientSecret, true}, {a.CertificatePassword, true}, {a.Password, false}, {r.cfg.StorePassphrase, false}} {
		if !x.s.IsSet() {
			continue
		}
		// The key is dotted (accounts.work.client_secret): name the last part.
		what := x.s.Key()
		if i := strings.LastIndex(what, "."); i >= 0 {
			what = what[i+1:]
		}
		if what == "" {
			what = "secret"
		}
		sctx, cancel := context.WithTimeout(ctx, secretTimeout)
		v, err := x.s.Resolve(sctx)
		cancel()
		if err != nil {
			if x.creds {
				r.credsBroken = true
			}
			r.fail(StepConfig, what, fmt.Sprintf("the reference %s does not resolve", x.s), secretFix(x.s), err)
			continue
		}
		if what == "client_secret" && guidRE.MatchString(strings.TrimSpace(v)) {
			r.warn(StepConfig, what, fmt.Sprintf("%s resolves, but its value has the shape of a GUID: that is the secret's ID, not its value", x.s),
				"in the app registration (Certificates & secrets) copy the Value column, not the Secret ID; a lost value cannot be shown again: create a new secret")
			continue
		}
		r.ok(StepConfig, what, fmt.Sprintf("%s resolves (the value is not shown)", x.s))
	}
}

func secretFix(s config.Secret) string {
	ref := s.String()
	switch s.Kind() {
	case config.SecretEnv:
		return "set the environment variable " + strings.TrimPrefix(ref, "env:") + " for mailoauth (and for the daemon's service)"
	case config.SecretFile:
		return "create " + strings.TrimPrefix(ref, "file:") + " holding the value, readable by you only (chmod 600)"
	case config.SecretCmd:
		return "run the command by hand: " + strings.TrimPrefix(ref, "cmd:") + " must print the value and exit 0"
	case config.SecretKeyring:
		return "store the value in the OS keyring under " + strings.TrimPrefix(ref, "keyring:") + " (for example with secret-tool or the keyring's own tool)"
	}
	return "fix the value of " + s.Key() + " in the config file"
}

// checkCertificate loads the client certificate as the login would, and
// checks its dates.
func (r *run) checkCertificate(ctx context.Context) {
	a := r.acct
	if a.Certificate == "" {
		return
	}
	data, err := os.ReadFile(a.Certificate)
	if err != nil {
		r.credsBroken = true
		r.fail(StepConfig, "certificate", "the certificate file cannot be read", "check the path and permissions of "+a.Certificate, err)
		return
	}
	var pw string
	if a.CertificatePassword.IsSet() {
		sctx, cancel := context.WithTimeout(ctx, secretTimeout)
		pw, err = a.CertificatePassword.Resolve(sctx)
		cancel()
		if err != nil {
			return // reported by checkSecrets
		}
	}
	cert, err := oauth.LoadCertificate(data, pw)
	if err != nil {
		r.credsBroken = true
		fix := "give a PEM file holding the certificate and its unencrypted private key, or a .pfx with certificate_password"
		if !pemLike(data) {
			fix = "check certificate_password: the .pfx must open with it (try: openssl pkcs12 -info -noout -in " + a.Certificate + ")"
		}
		r.fail(StepConfig, "certificate", "the certificate "+a.Certificate+" does not load: "+err.Error(), fix, err)
		return
	}
	leaf := cert.Chain[0]
	now := r.now()
	thumb := sha1.Sum(leaf.Raw)
	desc := fmt.Sprintf("%s loads: %s, valid until %s, SHA-1 thumbprint %s", a.Certificate, leaf.Subject, leaf.NotAfter.UTC().Format("2006-01-02"),
		strings.ToUpper(hex.EncodeToString(thumb[:])))
	switch {
	case now.After(leaf.NotAfter):
		r.credsBroken = true
		r.fail(StepConfig, "certificate", fmt.Sprintf("the certificate %s expired on %s", a.Certificate, leaf.NotAfter.UTC().Format("2006-01-02")),
			"create a new certificate, upload its public part to the app registration (Certificates & secrets → Certificates) and point certificate at it", nil)
	case now.Before(leaf.NotBefore):
		r.credsBroken = true
		r.fail(StepConfig, "certificate", fmt.Sprintf("the certificate %s is not valid before %s", a.Certificate, leaf.NotBefore.UTC().Format(time.RFC3339)),
			"check this computer's clock, or wait until the certificate is valid", nil)
	case leaf.NotAfter.Sub(now) < certWarnBefore:
		r.warn(StepConfig, "certificate", desc, "it expires soon: create a new certificate and upload it to the app registration before then")
	default:
		r.ok(StepConfig, "certificate", desc)
	}
}

func pemLike(data []byte) bool {
	b, _ := pem.Decode(data)
	return b != nil
}

// checkCAFile loads the account's extra CA certificates, as the mail and
// identity clients do.
func (r *run) checkCAFile() {
	a := r.acct
	if a.CAFile == "" {
		return
	}
	if _, err := mailclient.TLSConfig(a.CAFile); err != nil {
		r.credsBroken = true
		r.fail(StepConfig, "ca_file", "the CA file does not load: "+err.Error(), "ca_file must name a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)", err)
		return
	}
	n := 0
	data, _ := os.ReadFile(a.CAFile)
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			n++
			if r.now().After(c.NotAfter) {
				r.warn(StepConfig, "ca_file", fmt.Sprintf("%s holds an expired CA certificate (%s, expired %s)", a.CAFile, c.Subject, c.NotAfter.UTC().Format("2006-01-02")),
					"replace it with the CA's current certificate")
			}
		}
	}
	r.ok(StepConfig, "ca_file", fmt.Sprintf("%s loads (%d certificate(s)), trusted besides the system roots", a.CAFile, n))
}

// checkFlow checks what the config loader cannot: whether the scopes expand
// for the flow, and choices that work only with particular registrations.
func (r *run) checkFlow() {
	a := r.acct
	var p *provider.Provider
	switch a.Provider {
	case config.Microsoft:
		var err error
		if p, err = provider.Microsoft(provider.MicrosoftOptions{Tenant: a.Tenant, Cloud: a.Cloud, Authority: a.Authority}); err != nil {
			r.fail(StepConfig, "tenant", err.Error(), "set tenant to common, organizations, the tenant GUID or a verified domain", err)
			return
		}
	case config.Google:
		p = provider.Google()
	default:
		// An OIDC server's scopes are its own, and its provider needs
		// discovery (a network step): one token serves all.
		r.resources = []string{"imap"}
		r.ok(StepConfig, "flow", string(a.Flow)+" sign-in with provider oidc")
		return
	}
	d := provider.Delegated
	if a.Flow == config.FlowClientCredentials {
		d = provider.AppOnly
	}
	scopes, err := p.ExpandScopes(a.Scopes, d)
	if err != nil {
		r.fail(StepConfig, "scopes", err.Error(), "use the presets imap, pop, smtp, graph-mail, offline_access or full scope strings", err)
		return
	}
	if d == provider.AppOnly && a.Provider == config.Microsoft {
		for _, g := range p.SplitByResource(scopes) {
			if err := p.ValidateAppOnlyScopes(g.Scopes); err != nil {
				r.fail(StepConfig, "scopes", err.Error(), "for client credentials use the presets (imap, pop, smtp, graph-mail) or <resource>/.default", err)
				return
			}
		}
	}
	r.resources = resourcesOf(p, scopes, d == provider.AppOnly)
	flowDesc := string(a.Flow)
	switch {
	case a.Flow == config.FlowClientCredentials:
		r.ok(StepConfig, "flow", "client credentials with a "+credKind(a)+" in tenant "+a.Tenant+" fit a confidential app")
	case a.Provider == config.Microsoft && a.Confidential() && (a.Flow == config.FlowDevice || a.Flow == config.FlowPassword):
		r.warn(StepConfig, "flow", flowDesc+" sign-in with a "+credKind(a)+" configured: Microsoft refuses a credential from a public client (AADSTS700025)",
			"remove "+credKey(a)+" from [accounts."+a.Name+"]: device and password sign-ins need no app credential")
	case a.Provider == config.Microsoft && !slices.Contains(scopes, "offline_access"):
		r.warn(StepConfig, "flow", "scopes lack offline_access, so no refresh token is granted: every hour needs a new login",
			"add \"offline_access\" to scopes in [accounts."+a.Name+"] and run mailoauth login "+a.Name)
	default:
		r.ok(StepConfig, "flow", flowDesc+" sign-in fits provider "+string(a.Provider))
	}
}

func credKind(a *config.Account) string {
	if a.Certificate != "" {
		return "certificate"
	}
	return "client secret"
}

func credKey(a *config.Account) string {
	if a.Certificate != "" {
		return "certificate"
	}
	return "client_secret"
}

// resourcesOf names the access tokens an account uses, as Account.Token
// takes them: "imap" for the Exchange (or only) token, "graph" for Graph.
func resourcesOf(p *provider.Provider, scopes []string, appOnly bool) []string {
	if p.Kind != provider.KindMicrosoft {
		return []string{"imap"}
	}
	var out []string
	for _, g := range p.SplitByResource(scopes) {
		switch g.Resource {
		case p.Cloud.ExchangeResource, p.Cloud.ExchangeAppResource:
			if !slices.Contains(out, "imap") {
				out = append(out, "imap")
			}
		case p.Cloud.GraphURL:
			if !slices.Contains(out, "graph") {
				out = append(out, "graph")
			}
		}
	}
	if len(out) == 0 && appOnly {
		out = []string{"imap"}
	}
	return out
}
