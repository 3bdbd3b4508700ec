package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// mailAccount is what check, send and demo need from an account: the
// mailbox, whether the token is app-only, and fresh tokens per resource
// (internal/account.Account satisfies it).
type mailAccount interface {
	Name() string
	Email() string
	SignedInAs() string
	AppOnly() bool
	HTTPClient() *http.Client
	Config() *config.Account
	Token(ctx context.Context, resource string) (*oauth.Token, error)
	// ScopesCover says, without a request, whether the configured scopes
	// ask for what resource needs (nil) or which preset is missing.
	ScopesCover(ctx context.Context, resource string) error
}

// checkOptions are the flags of `mailoauth check`.
type checkOptions struct {
	Account string
	IMAP    bool
	POP3    bool
	SMTP    bool
	Graph   bool
	Recent  int
}

func newCheckCmd(g *Globals) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check ACCOUNT [--imap] [--pop3] [--smtp] [--graph]",
		Short: "Log in to the account's mail servers with a fresh token and say what worked",
		Long: "check gets a fresh access token for each protocol, connects and authenticates, and reports\n" +
			"step by step what worked and, when not, the server's exact reply and what to do about it.\n" +
			"Without protocol flags it checks every server the account has whose protocol its scopes\n" +
			"cover, and says which it skipped and why. It reads no mail unless\n" +
			"--recent asks for the newest messages' summaries.\n\n" +
			"Exit status: 0 when every check passed, 4 when the account needs `mailoauth login`, 1 otherwise.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Account = args[0]
			return runCheck(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.IMAP, "imap", false, "check IMAP")
	f.BoolVar(&o.POP3, "pop3", false, "check POP3")
	f.BoolVar(&o.SMTP, "smtp", false, "check SMTP submission (logs in, sends nothing)")
	f.BoolVar(&o.Graph, "graph", false, "check Microsoft Graph mail (lists the inbox)")
	f.IntVar(&o.Recent, "recent", 0, "also list the newest N messages of the inbox (IMAP, POP3, Graph)")
	return cmd
}

// checkResult is one protocol's outcome, as --json prints it.
type checkResult struct {
	Protocol string             `json:"protocol"`
	OK       bool               `json:"ok"`
	Relogin  bool               `json:"relogin_required,omitempty"`
	Report   *mailclient.Report `json:"report"`
}

// checkSkip is a protocol left out because the account's scopes do not
// cover it, as --json prints it.
type checkSkip struct {
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
}

func runCheck(ctx context.Context, g *Globals, o *checkOptions) error {
	a, err := g.Account(o.Account)
	if err != nil {
		return err
	}
	protos, err := checkProtocols(a, o)
	if err != nil {
		return err
	}
	acct, closeAcct, err := g.openMailAccount(ctx, o.Account)
	if err != nil {
		return err
	}
	defer closeAcct()
	protos, skipped, err := coveredProtocols(ctx, acct, protos, !o.IMAP && !o.POP3 && !o.SMTP && !o.Graph)
	if err != nil {
		return err
	}
	if !g.JSON {
		for _, sk := range skipped {
			fmt.Fprintf(g.Out, "%s skipped: %s\n", strings.ToUpper(sk.Protocol), sk.Reason)
		}
	}
	var results []checkResult
	for _, p := range protos {
		rep, err := checkOne(ctx, g, acct, p, o.Recent)
		results = append(results, checkResult{Protocol: p, OK: rep.OK(), Relogin: errors.Is(err, tokens.ErrReloginRequired), Report: rep})
		if !g.JSON {
			fmt.Fprint(g.Out, rep.String())
			for _, m := range rep.Messages {
				fmt.Fprintf(g.Out, "       message %s  %s  %s  %s\n", m.ID, m.Date.Format("2006-01-02 15:04"), m.From, m.Subject)
			}
		}
	}
	if g.JSON {
		out := struct {
			Account string        `json:"account"`
			OK      bool          `json:"ok"`
			Checks  []checkResult `json:"checks"`
			Skipped []checkSkip   `json:"skipped,omitempty"`
		}{Account: acct.Name(), OK: true, Checks: results, Skipped: skipped}
		for _, r := range results {
			out.OK = out.OK && r.OK
		}
		enc := json.NewEncoder(g.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	code := ExitOK
	for _, r := range results {
		switch {
		case r.Relogin:
			code = ExitRelogin
		case !r.OK && code == ExitOK:
			code = ExitError
		}
	}
	if code == ExitRelogin {
		fmt.Fprintf(g.ErrOut, "mailoauth: account %s needs a new sign-in: run mailoauth login %s\n", acct.Name(), acct.Name())
	}
	if code != ExitOK {
		return &SilentError{Code: code}
	}
	return nil
}

// checkProtocols returns the protocols asked for, or every one the account
// has servers for.
func checkProtocols(a *config.Account, o *checkOptions) ([]string, error) {
	has := map[string]bool{"imap": a.IMAP != nil, "pop3": a.POP3 != nil, "smtp": a.SMTP != nil, "graph": a.Graph != ""}
	asked := map[string]bool{"imap": o.IMAP, "pop3": o.POP3, "smtp": o.SMTP, "graph": o.Graph}
	all := !o.IMAP && !o.POP3 && !o.SMTP && !o.Graph
	var out []string
	for _, p := range []string{"imap", "pop3", "smtp", "graph"} {
		switch {
		case all && has[p]:
			out = append(out, p)
		case asked[p] && !has[p] && p == "graph" && a.Provider != config.Microsoft:
			return nil, &ConfigError{Err: fmt.Errorf("account %s: Microsoft Graph exists for provider microsoft only, not %s", a.Name, a.Provider)}
		case asked[p] && !has[p]:
			return nil, &ConfigError{Err: fmt.Errorf("account %s has no %s server: set %s in its [accounts.%s] table", a.Name, p, p, a.Name)}
		case asked[p]:
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, &ConfigError{Err: fmt.Errorf("account %s has no mail servers to check: set imap, pop3, smtp or graph", a.Name)}
	}
	return out, nil
}

// coveredProtocols keeps the protocols whose token the account's scopes
// ask for. When the user named none (all), the others are skipped with the
// reason, so an IMAP-only account does not fail a Graph check it was never
// set up for; an explicit --graph without a Graph scope is a config error
// naming the preset to add, as `token --resource graph` says. An explicit
// IMAP, POP3 or SMTP check always runs: the server's own reply is then the
// most useful answer.
func coveredProtocols(ctx context.Context, acct mailAccount, protos []string, all bool) ([]string, []checkSkip, error) {
	var keep []string
	var skipped []checkSkip
	for _, p := range protos {
		err := acct.ScopesCover(ctx, tokenResource(p))
		switch {
		case err == nil:
			keep = append(keep, p)
		case all:
			skipped = append(skipped, checkSkip{Protocol: p, Reason: err.Error()})
		case p == "graph":
			return nil, nil, &ConfigError{Err: err}
		default:
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		reasons := make([]string, len(skipped))
		for i, sk := range skipped {
			reasons[i] = sk.Protocol + ": " + sk.Reason
		}
		return nil, nil, &ConfigError{Err: fmt.Errorf("account %s: its scopes cover none of its servers (%s)", acct.Name(), strings.Join(reasons, "; "))}
	}
	return keep, skipped, nil
}

// tokenResource maps a protocol to the resource name Account.Token takes.
func tokenResource(proto string) string {
	if proto == "pop3" {
		return "pop"
	}
	return proto
}

// checkTimeout bounds one protocol's check, token included: a server that
// greets and then stops answering must not hang `mailoauth check`.
var checkTimeout = 2 * time.Minute

// checkOne runs one protocol's check. The report is never nil: a token
// failure is reported as its first, failed step.
func checkOne(ctx context.Context, g *Globals, acct mailAccount, proto string, recent int) (*mailclient.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	a := acct.Config()
	opts, err := mailOptions(g, acct)
	if err != nil {
		return failedReport(acct, proto, "config", "could not read the account's ca_file", err), err
	}
	opts.Recent = recent
	tok, err := acct.Token(ctx, tokenResource(proto))
	if err != nil {
		return tokenFailure(acct, proto, err), err
	}
	opts.Token = tok.AccessToken
	if proto == "graph" {
		return mailclient.CheckGraph(ctx, graphClient(acct, tok), graphMailbox(acct, ""), opts)
	}
	srv, err := mailclient.ParseURL(serverOf(a, proto).URL)
	if err != nil {
		return failedReport(acct, proto, "config", "bad server URL", err), err
	}
	return mailclient.Check(ctx, srv, opts)
}

// mailOptions are the mailclient options every protocol of acct shares.
func mailOptions(g *Globals, acct mailAccount) (mailclient.Options, error) {
	a := acct.Config()
	tc, err := mailclient.TLSConfig(a.CAFile)
	if err != nil {
		return mailclient.Options{}, err
	}
	mech := ""
	if a.SASL != "" && a.SASL != "auto" {
		mech = strings.ToUpper(a.SASL)
	}
	return mailclient.Options{User: acct.Email(), Mechanism: mech, TLSConfig: tc, Logger: g.Logger}, nil
}

func serverOf(a *config.Account, proto string) *config.Server {
	switch proto {
	case "imap":
		return a.IMAP
	case "pop3":
		return a.POP3
	case "smtp":
		return a.SMTP
	}
	return nil
}

// graphClient calls the account's Graph endpoint with tok.
func graphClient(acct mailAccount, tok *oauth.Token) *graph.Client {
	c := graph.New(acct.HTTPClient(), graph.StaticToken(tok.AccessToken))
	if base := acct.Config().Graph; base != "" {
		c.BaseURL = strings.TrimSuffix(base, "/") + "/v1.0"
	}
	return c
}

// graphMailbox is the Graph path of the account's mailbox, or of from when
// sending as another one: /me for the signed-in user's own mailbox,
// /users/{email} for an app token (Graph refuses /me) and for a shared
// mailbox opened with a user's token (config email ≠ the signed-in user).
func graphMailbox(acct mailAccount, from string) graph.Mailbox {
	mailbox, who := acct.Email(), acct.SignedInAs()
	if who == "" {
		who = mailbox // no ID token: take the account's mailbox as the user's own
	}
	if from != "" {
		mailbox = from
	}
	return graph.MailboxFor(mailbox, who, acct.AppOnly())
}

// failedReport is a report whose only step failed before any connection.
func failedReport(acct mailAccount, proto, step, detail string, err error) *mailclient.Report {
	rep := &mailclient.Report{Protocol: mailclient.Protocol(proto), User: acct.Email()}
	if s := serverOf(acct.Config(), proto); s != nil {
		rep.Server = s.URL
	} else if proto == "graph" {
		rep.Server = acct.Config().Graph
	}
	rep.Steps = []mailclient.Step{{Name: step, Detail: detail, Error: err.Error()}}
	return rep
}

// tokenFailure reports a failed token request as the check's first step,
// with the OAuth error's hint or the login command.
func tokenFailure(acct mailAccount, proto string, err error) *mailclient.Report {
	rep := failedReport(acct, proto, "token", "could not get an access token for "+tokenResource(proto), err)
	s := &rep.Steps[0]
	var oe *oauth.Error
	switch {
	case errors.Is(err, tokens.ErrReloginRequired):
		s.Hint = "sign in again: mailoauth login " + acct.Name()
	case errors.As(err, &oe):
		s.Hint = oe.Hint
	}
	return rep
}

// openMailAccount opens the named account of the config with the shared
// token store; the returned function closes the store.
func (g *Globals) openMailAccount(ctx context.Context, name string) (mailAccount, func(), error) {
	if _, err := g.Account(name); err != nil {
		return nil, nil, err
	}
	m, a, err := openAccount(ctx, g, name) // the same store options as login and token
	if err != nil {
		return nil, nil, err
	}
	return a, func() { m.Close() }, nil
}
