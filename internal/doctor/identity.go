package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
)

// identityTimeout bounds the discovery request.
const identityTimeout = 30 * time.Second

// checkIdentity is step 2: the identity server's metadata for the
// account's tenant (Microsoft), Google's, or the OIDC issuer's, fetched over
// verified TLS with the account's ca_file.
func (r *run) checkIdentity(ctx context.Context) {
	a := r.acct
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	hc := r.opts.Account.HTTPClient
	if hc == nil {
		var err error
		if hc, err = identityClient(a.CAFile); err != nil {
			r.identityBroken = true
			r.skip(StepIdentity, "identity server", "not checked: the ca_file above does not load")
			return
		}
		defer hc.CloseIdleConnections() // its own transport: leave no connection behind
	}
	var doc string
	switch a.Provider {
	case config.Microsoft:
		p, err := provider.Microsoft(provider.MicrosoftOptions{Tenant: a.Tenant, Cloud: a.Cloud, Authority: a.Authority})
		if err != nil {
			r.identityBroken = true
			return // reported by the config step
		}
		doc = p.Endpoints.Issuer + "/.well-known/openid-configuration"
	case config.Google:
		doc = "https://accounts.google.com/.well-known/openid-configuration"
	case config.OIDC:
		doc = strings.TrimSuffix(a.Issuer, "/") + "/.well-known/openid-configuration"
		if _, err := provider.Discover(ctx, hc, a.Issuer); err != nil {
			r.identityBroken = true
			words, fix := netWords(err, a.Issuer)
			if words == "" {
				words, fix = "the issuer's discovery failed: "+err.Error(), "check issuer: its /.well-known/openid-configuration (or oauth-authorization-server) must answer with JSON naming the same issuer"
			}
			r.fail(StepIdentity, "identity server", words, fix, err)
			return
		}
		r.ok(StepIdentity, "identity server", "the issuer "+a.Issuer+" answers over verified TLS with its metadata")
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, doc, nil)
	if err != nil {
		r.identityBroken = true
		r.fail(StepIdentity, "identity server", "the metadata URL is invalid: "+err.Error(), "check authority and tenant", err)
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		r.identityBroken = true
		words, fix := netWords(err, req.URL.Host)
		if words == "" {
			words, fix = "the identity server did not answer: "+err.Error(), "check the network, a proxy (HTTPS_PROXY) and the authority"
		}
		r.fail(StepIdentity, "identity server", words, fix, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		r.identityBroken = true
		oe := oauth.DecodeErrorResponse(resp.StatusCode, resp.Header, body)
		oe.Endpoint = "discovery"
		f := r.explain(StepIdentity, "tenant", oe)
		if f.Words == "" {
			f.Words = fmt.Sprintf("the identity server answered HTTP %d for the tenant's metadata", resp.StatusCode)
			f.Fix = "check tenant, cloud and authority"
		}
		r.add(f)
		return
	}
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &meta); err != nil || meta.TokenEndpoint == "" {
		r.identityBroken = true
		r.fail(StepIdentity, "identity server", "the answer at "+doc+" is not OpenID metadata (a proxy or a wrong authority may be answering)",
			"check authority (and the network's proxy): it must be the identity platform's base URL", err)
		return
	}
	r.checkClock(resp.Header.Get("Date"))
	switch a.Provider {
	case config.Microsoft:
		if provider.ClassifyTenant(a.Tenant) == provider.TenantMulti {
			r.ok(StepIdentity, "tenant", fmt.Sprintf("the %s endpoint (%s cloud) answers over verified TLS", a.Tenant, a.Cloud))
			break
		}
		r.ok(StepIdentity, "tenant", fmt.Sprintf("tenant %s exists (%s cloud) and the identity server answers over verified TLS", a.Tenant, a.Cloud))
	default:
		r.ok(StepIdentity, "identity server", "the identity server answers over verified TLS")
	}
}

// identityClient is a client trusting the system roots and caFile, like
// the account's own.
func identityClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		tc, err := mailclient.TLSConfig(caFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr, Timeout: identityTimeout}, nil
}

// netWords names a connection or TLS failure in plain words, with what to
// do; "" when err is neither.
func netWords(err error, host string) (words, fix string) {
	if u, perr := url.Parse(host); perr == nil && u.Host != "" {
		host = u.Host
	}
	var uae x509.UnknownAuthorityError
	var hn x509.HostnameError
	var cie x509.CertificateInvalidError
	var dns *net.DNSError
	var opErr *net.OpError
	var recHdr tls.RecordHeaderError
	switch {
	case errors.As(err, &uae):
		words = host + "'s TLS certificate is signed by an authority this computer does not trust: usually a company proxy that inspects HTTPS, or a server with a private CA"
		fix = "get that CA's certificate (PEM) from your administrator and set ca_file = \"/path/ca.pem\" in the account; do not turn verification off"
	case errors.As(err, &hn):
		words = host + "'s TLS certificate is for another name (" + strings.Join(hn.Certificate.DNSNames, ", ") + "): a proxy, a wrong host name or a DNS problem"
		fix = "use the host name the certificate is for, or check the network's proxy"
	case errors.As(err, &cie):
		words = host + "'s TLS certificate is not valid now (expired, not yet valid, or not for a server)"
		fix = "check this computer's date and time; if they are right, the server's certificate must be renewed"
	case errors.As(err, &recHdr):
		words = host + " does not speak TLS on that port"
		fix = "check the URL's scheme and port"
	case errors.As(err, &dns):
		words = "the host name " + dns.Name + " does not resolve"
		fix = "check the spelling of the host (and the cloud), and this computer's DNS"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		words = "no answer from " + host + " in time"
		fix = "check the network, a firewall or a proxy (HTTPS_PROXY)"
	case errors.As(err, &opErr):
		words = "cannot connect to " + host + " (" + opErr.Err.Error() + ")"
		fix = "check the host and port, the network and a firewall"
	}
	return words, fix
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Clock skew limits: Microsoft accepts client assertions about 5 minutes
// off; beyond 2 minutes the clock is worth fixing anyway.
const (
	skewWarn = 2 * time.Minute
	skewFail = 5 * time.Minute
)

// checkClock compares this computer's clock with the identity server's
// Date header: a wrong clock breaks client assertions (AADSTS700024) and
// TLS certificate checks, and makes token expiry times wrong.
func (r *run) checkClock(date string) {
	server, err := http.ParseTime(date)
	if err != nil {
		return // no Date header: nothing to compare
	}
	skew := r.now().Sub(server)
	if skew < 0 {
		skew = -skew
	}
	if skew < skewWarn {
		return
	}
	dir := "ahead of"
	if r.now().Before(server) {
		dir = "behind"
	}
	words := fmt.Sprintf("this computer's clock is %s %s the identity server's", skew.Round(time.Second), dir)
	fix := "synchronise the clock (timedatectl set-ntp true, or your system's NTP settings)"
	if skew >= skewFail && r.acct.Certificate != "" {
		r.fail(StepIdentity, "clock", words+": client assertions will be refused (AADSTS700024)", fix, nil)
		return
	}
	r.warn(StepIdentity, "clock", words, fix)
}
