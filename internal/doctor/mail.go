package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/mailclient"
)

// mailTimeout bounds one protocol's check.
const mailTimeout = 45 * time.Second

// protocol is one mail check: its name and the token resource it uses.
type protocol struct {
	name     string // imap, pop3, smtp, graph
	label    string // IMAP, POP3, SMTP, Graph
	resource string
	url      string
}

// protocols lists the account's servers that its scopes cover: a server
// the account has no permission for would fail for no fault of the setup.
func (r *run) protocols() []protocol {
	a := r.acct
	cover := map[string]bool{}
	if a.Provider != config.Microsoft {
		cover["imap"], cover["pop3"], cover["smtp"] = true, true, true
	} else {
		for _, s := range a.Scopes {
			for _, f := range strings.Fields(strings.ToLower(s)) {
				switch {
				case f == "imap" || strings.Contains(f, "/imap."):
					cover["imap"] = true
				case f == "pop" || strings.Contains(f, "/pop."):
					cover["pop3"] = true
				case f == "smtp" || strings.Contains(f, "/smtp."):
					cover["smtp"] = true
				case strings.HasSuffix(f, "/.default") && strings.Contains(f, "outlook"):
					cover["imap"], cover["pop3"], cover["smtp"] = true, true, true
				}
			}
		}
		cover["graph"] = slices.Contains(r.resources, "graph")
	}
	var out []protocol
	add := func(name, label string, s *config.Server) {
		if s != nil && cover[name] {
			out = append(out, protocol{name: name, label: label, resource: "imap", url: s.URL})
		}
	}
	add("imap", "IMAP", a.IMAP)
	add("pop3", "POP3", a.POP3)
	add("smtp", "SMTP", a.SMTP)
	if cover["graph"] && a.Graph != "" {
		out = append(out, protocol{name: "graph", label: "Graph", resource: "graph", url: a.Graph})
	}
	return out
}

// checkMail is step 5: a real login to each of the account's servers with
// a fresh token, translated into plain words.
func (r *run) checkMail(ctx context.Context, a *account.Account) {
	protos := r.protocols()
	if len(protos) == 0 {
		r.skip(StepMail, "mail servers", "none to check: the account's scopes cover none of its servers")
		return
	}
	email := a.Email()
	type result struct {
		p   protocol
		rep *mailclient.Report
		err error
	}
	var results []result
	if !slices.ContainsFunc(protos, func(p protocol) bool { return r.tokenOK[p.resource] }) {
		var names []string
		for _, p := range protos {
			names = append(names, p.label)
		}
		r.skip(StepMail, "mail servers", "not tried ("+strings.Join(names, ", ")+"): no working token (see above)")
		return
	}
	for _, p := range protos {
		if !r.tokenOK[p.resource] {
			r.skip(StepMail, p.label, "not tried: no working "+resourceLabel(r.acct, p.resource)+" token (see above)")
			continue
		}
		if email == "" {
			r.fail(StepMail, p.label, "no mailbox address is known for the login",
				"set email = \"you@example.com\" in [accounts."+r.acct.Name+"]", nil)
			continue
		}
		rep, err := r.checkOne(ctx, a, p, email)
		results = append(results, result{p, rep, err})
	}
	graphOK := slices.ContainsFunc(results, func(x result) bool { return x.p.name == "graph" && x.err == nil && x.rep.OK() })
	// An Exchange protocol that logged in proves the token and the
	// mailbox access are fine: another one refusing the same token is off
	// for the mailbox (or its scope or role is missing).
	var exchangeOK []string
	for _, x := range results {
		if x.p.name != "graph" && x.err == nil && x.rep.OK() {
			exchangeOK = append(exchangeOK, x.p.label)
		}
	}
	for _, x := range results {
		if x.err == nil && x.rep.OK() {
			mech := ""
			if x.rep.Mechanism != "" {
				mech = " with " + x.rep.Mechanism
			}
			r.ok(StepMail, x.p.label, fmt.Sprintf("%s: logged in as %s%s", x.p.url, email, mech))
			continue
		}
		r.add(r.mailFinding(x.p, x.rep, x.err, email, graphOK, exchangeOK))
	}
}

// checkOne runs one protocol's check with the account's current token.
func (r *run) checkOne(ctx context.Context, a *account.Account, p protocol, email string) (*mailclient.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	tok, err := a.Token(ctx, p.resource)
	if err != nil {
		return &mailclient.Report{Server: p.url, User: email, Steps: []mailclient.Step{{Name: "token", Detail: "no access token", Error: err.Error()}}}, err
	}
	tc, err := mailclient.TLSConfig(r.acct.CAFile)
	if err != nil {
		return &mailclient.Report{Server: p.url, User: email, Steps: []mailclient.Step{{Name: "config", Detail: "the ca_file does not load", Error: err.Error()}}}, err
	}
	mech := ""
	if s := r.acct.SASL; s != "" && s != "auto" {
		mech = strings.ToUpper(s)
	}
	opts := mailclient.Options{User: email, Token: tok.AccessToken, Mechanism: mech, TLSConfig: tc, Logger: r.log}
	if p.name == "graph" {
		gc := graph.New(a.HTTPClient(), graph.StaticToken(tok.AccessToken))
		gc.BaseURL = strings.TrimSuffix(r.acct.Graph, "/") + "/v1.0"
		mb := graph.MailboxFor(email, a.SignedInAs(), a.AppOnly())
		return mailclient.CheckGraph(ctx, gc, mb, opts)
	}
	srv, err := mailclient.ParseURL(p.url)
	if err != nil {
		return &mailclient.Report{Server: p.url, User: email, Steps: []mailclient.Step{{Name: "config", Detail: "bad server URL", Error: err.Error()}}}, err
	}
	return mailclient.Check(ctx, srv, opts)
}

// mailFinding translates a failed check into plain words and a fix.
func (r *run) mailFinding(p protocol, rep *mailclient.Report, err error, email string, graphOK bool, exchangeOK []string) Finding {
	f := Finding{Step: StepMail, Status: Fail, What: p.label}
	if err != nil {
		f.Error = err.Error()
	}
	var s mailclient.Step
	for _, st := range rep.Steps {
		if !st.OK {
			s = st
			break
		}
	}
	if s.Name == "token" && err != nil {
		g := r.explain(StepMail, p.label, err)
		g.Words = "no token for " + p.url + ": " + g.Words
		return g
	}
	said := ""
	if s.Reply != "" {
		said = " (server said: " + s.Reply + ")"
	}
	lower := strings.ToLower(s.Reply)
	a := r.acct
	mbFix := func(h string) string { return strings.ReplaceAll(h, "<mailbox>", email) }
	switch {
	case strings.Contains(lower, "5.7.139") && strings.Contains(lower, "mailbox"):
		f.Words = "Exchange has SMTP AUTH turned off for the mailbox " + email + said
		f.Fix = "an Exchange admin runs, in Exchange Online PowerShell: Set-CASMailbox -Identity " + email +
			" -SmtpClientAuthenticationDisabled $false (or Microsoft 365 admin center → Users → Active users → " + email +
			" → Mail → Manage email apps → Authenticated SMTP)"
	case strings.Contains(lower, "5.7.139") && strings.Contains(lower, "tenant"):
		f.Words = "Exchange has SMTP AUTH turned off for the whole tenant" + said
		f.Fix = "an Exchange admin runs, in Exchange Online PowerShell: Set-TransportConfig -SmtpClientAuthenticationDisabled $false " +
			"(whole tenant), or for this mailbox only: Set-CASMailbox -Identity " + email + " -SmtpClientAuthenticationDisabled $false; " +
			"security defaults also turn SMTP AUTH off"
	case a.Provider == config.Microsoft && s.Name == "authenticate" && (p.name == "imap" || p.name == "pop3") && len(exchangeOK) > 0:
		sw, scope := "-ImapEnabled", "IMAP.AccessAsUser.All"
		if p.name == "pop3" {
			sw, scope = "-PopEnabled", "POP.AccessAsUser.All"
		}
		if a.Flow == config.FlowClientCredentials {
			scope = map[string]string{"imap": "IMAP.AccessAsApp", "pop3": "POP.AccessAsApp"}[p.name] + " (Application)"
		}
		f.Words = fmt.Sprintf("Exchange refused %s for %s though %s accepted the same token: %s is probably turned off for the mailbox%s",
			p.label, email, strings.Join(exchangeOK, " and "), p.label, said)
		f.Fix = "an Exchange admin runs, in Exchange Online PowerShell: Set-CASMailbox -Identity " + email + " " + sw + " $true " +
			"(check with Get-CASMailbox -Identity " + email + "); if it is on, the app lacks Office 365 Exchange Online → " + scope + " with consent"
	case a.Provider == config.Microsoft && a.Flow == config.FlowClientCredentials && s.Name == "authenticate" && p.name != "graph":
		role := map[string]string{"imap": "IMAP.AccessAsApp", "pop3": "POP.AccessAsApp", "smtp": "SMTP.SendAsApp"}[p.name]
		f.Words = "Exchange rejected the app token for " + email + " without saying why" + said
		if graphOK {
			f.Words += "; Graph accepts this app, so its credential and Graph permissions are fine"
		}
		f.Fix = "register the app's service principal in Exchange and grant it FullAccess on the mailbox, in Exchange Online PowerShell: " +
			"Connect-ExchangeOnline; New-ServicePrincipal -AppId " + a.ClientID + " -ObjectId <object ID of the Enterprise application, not of the app registration>; " +
			"Add-MailboxPermission -Identity " + email + " -User <that service principal's ObjectId> -AccessRights FullAccess. " +
			"Also check the app has Office 365 Exchange Online → " + role + " (Application) with admin consent"
	case s.Name == "authenticate":
		f.Words = "the server rejected the login of " + email + said
		f.Fix = mbFix(s.Hint)
	default:
		if w, fix := netWords(err, p.url); w != "" {
			f.Words, f.Fix = w, fix
			break
		}
		f.Words = p.url + ": " + strings.TrimSpace(s.Name+" failed: "+s.Detail) + said
		f.Fix = mbFix(s.Hint)
		if f.Fix == "" && s.Error != "" {
			f.Words += ": " + s.Error
		}
	}
	return f
}
