package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/oauth"
)

// ConsentOptions are the inputs of `mailoauth consent`.
type ConsentOptions struct {
	G         *Globals
	Account   string
	URLOnly   bool
	V1        bool
	NoBrowser bool
	Paste     bool
	Timeout   time.Duration
	Browser   oauth.Browser // replaces the system browser (tests)
}

func newConsentCmd(g *Globals, runF func(context.Context, *ConsentOptions) error) *cobra.Command {
	o := &ConsentOptions{G: g}
	cmd := &cobra.Command{
		Use:   "consent ACCOUNT",
		Short: "Ask a tenant administrator to consent to the app for the whole tenant",
		Long: "consent opens Microsoft's admin consent page for the account's tenant (never common:\n" +
			"consent is per tenant), waits for the redirect on 127.0.0.1 and reports the consented\n" +
			"tenant and scope, or the error with its fix. --url-only prints the URL for an\n" +
			"administrator on another machine.",
		Example: "  mailoauth consent contoso\n  mailoauth consent contoso --url-only",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Account = args[0]
			if runF == nil {
				runF = runConsent
			}
			return runF(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.URLOnly, "url-only", false, "print the admin consent URL and exit")
	f.BoolVar(&o.V1, "v1", false, "use the v1 endpoint (consents to the registered permissions)")
	addBrowserFlags(cmd, &o.NoBrowser, &o.Paste, &o.Timeout, "the administrator")
	return cmd
}

// consentJSON is the result of `consent --json`.
type consentJSON struct {
	Account string   `json:"account"`
	URL     string   `json:"url,omitempty"`
	Tenant  string   `json:"tenant,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
}

func runConsent(ctx context.Context, o *ConsentOptions) error {
	g := o.G
	m, a, err := openAccount(ctx, g, o.Account)
	if err != nil {
		return err
	}
	defer m.Close()
	if o.URLOnly {
		u, err := a.AdminConsentURL(ctx, o.V1)
		if err != nil {
			return reportError(g, err)
		}
		if g.JSON {
			return writeJSON(g.Out, consentJSON{Account: a.Name(), URL: u})
		}
		fmt.Fprintln(g.Out, u)
		whose := "of tenant " + a.Config().Tenant
		if strings.EqualFold(a.Config().Tenant, "organizations") {
			whose = "of the customer's organization (any organization: the tenant that consents is the administrator's own)"
		}
		fmt.Fprintf(g.ErrOut, "Send this URL to a Global Administrator (or Cloud Application Administrator) %s.\n"+
			"The browser then lands on %s (an error page when nothing listens there):\n"+
			"its address bar shows admin_consent=True and the tenant, or error and error_description.\n", whose, a.Config().RedirectURI)
		return nil
	}
	lo := &LoginOptions{G: g, NoBrowser: o.NoBrowser, Paste: o.Paste, Timeout: o.Timeout, Browser: o.Browser}
	ui, stop := loginUI(g, lo)
	it := ui.Interaction
	it.ShowURL = func(u string) {
		tenant := "tenant " + a.Config().Tenant
		if strings.EqualFold(a.Config().Tenant, "organizations") {
			tenant = "the organization"
		}
		fmt.Fprintf(g.ErrOut, "Open this URL and sign in as an administrator of %s (Global Administrator, Cloud Application Administrator\n"+
			"or Application Administrator) to consent to the app for the whole organization:\n\n  %s\n\n", tenant, u)
		if it.Paste != nil {
			fmt.Fprintln(g.ErrOut, "If the browser cannot reach this machine, paste the full URL it ends on here and press Enter.")
		}
	}
	res, err := a.AdminConsent(ctx, o.V1, it)
	stop()
	if err != nil {
		return reportError(g, fmt.Errorf("admin consent for %s: %w", a.Name(), err))
	}
	if g.JSON {
		return writeJSON(g.Out, consentJSON{Account: a.Name(), Tenant: res.Tenant, Scopes: res.Scopes})
	}
	fmt.Fprintf(g.ErrOut, "Admin consent granted in tenant %s.\n", res.Tenant)
	if len(res.Scopes) > 0 {
		fmt.Fprintf(g.ErrOut, "Scope: %s\n", strings.Join(res.Scopes, " "))
	}
	fmt.Fprintf(g.ErrOut, "Next: mailoauth login %s\n", a.Name())
	return nil
}
