package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/tokens"
)

// sendOptions are the flags of `mailoauth send`.
type sendOptions struct {
	Account string
	To      []string
	Cc      []string
	Bcc     []string
	Subject string
	Attach  []string
	Via     string
	From    string
}

// maxBody caps the message body read from stdin (Exchange's default
// message size limit is 25–35 MB; Graph takes a body of at most 4 MB, and
// sends attachments of 3 MB or more, up to 150 MB, through upload sessions).
const maxBody = 35 << 20

func newSendCmd(g *Globals) *cobra.Command {
	o := &sendOptions{}
	cmd := &cobra.Command{
		Use:   "send ACCOUNT --to ADDR [--to ADDR…] [--subject S] [--attach FILE…] [--via smtp|graph]",
		Short: "Send a message read from stdin, over SMTP or Microsoft Graph",
		Long: "send reads a plain-text body from stdin and sends it as the account's mailbox: over SMTP\n" +
			"submission as a MIME message (the default when the account has an SMTP server), or through\n" +
			"Microsoft Graph's sendMail (/me for a user's token, /users/{email} for an app's);\n" +
			"over 4 MB, or with a file of 3 MB or more (up to 150 MB each), Graph gets a draft, the\n" +
			"files in chunked upload sessions, then a send of the draft (needs Mail.ReadWrite).\n" +
			"--from sends as another mailbox the account may send as (a shared mailbox).\n\n" +
			"Exit status: 0 when the server accepted the message, 4 when the account needs\n" +
			"`mailoauth login`, 1 otherwise.",
		Example: "  echo 'Hello' | mailoauth send work --to bob@contoso.com --subject Hi --attach report.pdf",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Account = args[0]
			if len(o.To)+len(o.Cc)+len(o.Bcc) == 0 {
				return &FlagError{Err: errors.New("name at least one recipient with --to, --cc or --bcc")}
			}
			switch o.Via {
			case "", "smtp", "graph":
			default:
				return &FlagError{Err: fmt.Errorf("--via %q: use smtp or graph", o.Via)}
			}
			return runSend(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.To, "to", nil, "recipient (repeatable)")
	f.StringArrayVar(&o.Cc, "cc", nil, "copy recipient (repeatable)")
	f.StringArrayVar(&o.Bcc, "bcc", nil, "blind copy recipient (repeatable; never written into the headers)")
	f.StringVar(&o.Subject, "subject", "", "subject line")
	f.StringArrayVar(&o.Attach, "attach", nil, "attach a file (repeatable)")
	f.StringVar(&o.Via, "via", "", "smtp or graph (default: smtp when the account has an SMTP server, else graph)")
	f.StringVar(&o.From, "from", "", "send as this address (default: the account's mailbox)")
	return cmd
}

func runSend(ctx context.Context, g *Globals, o *sendOptions) error {
	a, err := g.Account(o.Account)
	if err != nil {
		return err
	}
	via := o.Via
	if via == "" {
		via = "graph"
		if a.SMTP != nil {
			via = "smtp"
		}
	}
	if via == "smtp" && a.SMTP == nil {
		return &ConfigError{Err: fmt.Errorf("account %s has no smtp server: set smtp in [accounts.%s] or use --via graph", a.Name, a.Name)}
	}
	if via == "graph" && a.Graph == "" {
		return &ConfigError{Err: fmt.Errorf("account %s has no Graph endpoint (Microsoft accounts only): use --via smtp", a.Name)}
	}
	msg := &mailclient.Message{From: o.From, To: o.To, Cc: o.Cc, Bcc: o.Bcc, Subject: o.Subject}
	for _, p := range o.Attach {
		att, err := mailclient.AttachFile(p)
		if err != nil {
			return &FlagError{Err: err}
		}
		msg.Attachments = append(msg.Attachments, att)
	}
	if f, ok := g.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintln(g.ErrOut, "Type the message, then Ctrl-D on a line of its own:")
	}
	body, err := io.ReadAll(io.LimitReader(g.In, maxBody+1))
	if err != nil {
		return fmt.Errorf("read the message body from stdin: %w", err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("the message body on stdin is larger than %d MB", maxBody>>20)
	}
	msg.Body = bytes.NewReader(body)
	acct, closeAcct, err := g.openMailAccount(ctx, o.Account)
	if err != nil {
		return err
	}
	defer closeAcct()

	rep, err := sendOne(ctx, g, acct, via, msg)
	if g.JSON {
		enc := json.NewEncoder(g.Out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(struct {
			Account string             `json:"account"`
			Via     string             `json:"via"`
			OK      bool               `json:"ok"`
			Report  *mailclient.Report `json:"report"`
		}{acct.Name(), via, rep.OK(), rep}); jerr != nil {
			return jerr
		}
	} else if !rep.OK() {
		fmt.Fprint(g.ErrOut, rep.String())
	} else {
		fmt.Fprintf(g.ErrOut, "sent via %s: %s\n", via, rep.Steps[len(rep.Steps)-1].Detail)
	}
	switch {
	case errors.Is(err, tokens.ErrReloginRequired):
		fmt.Fprintf(g.ErrOut, "mailoauth: account %s needs a new sign-in: run mailoauth login %s\n", acct.Name(), acct.Name())
		return &SilentError{Code: ExitRelogin}
	case err != nil || !rep.OK():
		return &SilentError{Code: ExitError}
	}
	return nil
}

// sendOne sends msg over SMTP or Graph with a fresh token. The report is
// never nil.
func sendOne(ctx context.Context, g *Globals, acct mailAccount, via string, msg *mailclient.Message) (*mailclient.Report, error) {
	opts, err := mailOptions(g, acct)
	if err != nil {
		return failedReport(acct, via, "config", "could not read the account's ca_file", err), err
	}
	tok, err := acct.Token(ctx, via)
	if err != nil {
		return tokenFailure(acct, via, err), err
	}
	opts.Token = tok.AccessToken
	if via == "graph" {
		return mailclient.SendGraph(ctx, graphClient(acct, tok), graphMailbox(acct, msg.From), opts, msg)
	}
	srv, err := mailclient.ParseURL(acct.Config().SMTP.URL)
	if err != nil {
		return failedReport(acct, via, "config", "bad server URL", err), err
	}
	return mailclient.Send(ctx, srv, opts, msg)
}
