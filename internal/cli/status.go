package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/account"
)

// StatusOptions are the inputs of `mailoauth status`.
type StatusOptions struct {
	G *Globals
	// Now is the clock for "expires in" (tests); nil means time.Now.
	Now func() time.Time
}

func newStatusCmd(g *Globals, runF func(context.Context, *StatusOptions) error) *cobra.Command {
	o := &StatusOptions{G: g}
	return &cobra.Command{
		Use:   "status",
		Short: "Show every account: logged in or not, token expiry, health, what to do next",
		Long: "status lists the accounts of the config with what the token store knows: whether they\n" +
			"are logged in, the expiry of each cached access token, the last refresh, health (ok,\n" +
			"logged-out, relogin, error) and the next action: the command to run, or when the next\n" +
			"refresh is due (done by the next token request). It makes no network request.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF == nil {
				runF = runStatus
			}
			return runF(cmd.Context(), o)
		},
	}
}

func runStatus(ctx context.Context, o *StatusOptions) error {
	g := o.G
	m, err := openAccounts(ctx, g)
	if err != nil {
		return err
	}
	defer m.Close()
	list := []account.Status{}
	for _, name := range m.Config().AccountNames() {
		a, err := m.Account(name)
		if err != nil {
			return err
		}
		st, err := a.Status(ctx)
		if err != nil {
			return err
		}
		list = append(list, st)
	}
	if g.JSON {
		return writeJSON(g.Out, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(g.ErrOut, "No accounts in %s.\n", m.Config().File)
		return nil
	}
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tHEALTH\tEMAIL\tTOKENS\tLAST REFRESH\tNEXT")
	for _, st := range list {
		toks := "-"
		if len(st.Access) > 0 {
			toks = ""
			for i, r := range st.Access {
				if i > 0 {
					toks += ", "
				}
				toks += r.Resource + " " + relTime(now, r.Expiry)
			}
		}
		last := "-"
		if !st.LastRefresh.IsZero() {
			last = st.LastRefresh.Local().Format(time.DateTime)
		}
		email, next := st.Email, st.NextAction
		if email == "" {
			email = "-"
		}
		if next == "" {
			next = nextRefresh(now, st.Access)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Account, st.Health, email, toks, last, next)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range list {
		if st.LastError != "" {
			fmt.Fprintf(g.ErrOut, "%s: last error (%s): %s\n", st.Account, st.LastErrorAt.Local().Format(time.DateTime), st.LastError)
		}
	}
	return nil
}

// nextRefresh is the NEXT column of a healthy account: when its first
// cached token is due for refresh, which the next token request (a mail
// client's or the daemon's) does by itself.
func nextRefresh(now time.Time, access []account.ResourceStatus) string {
	var first time.Time
	for _, r := range access {
		if !r.RefreshDue.IsZero() && (first.IsZero() || r.RefreshDue.Before(first)) {
			first = r.RefreshDue
		}
	}
	switch d := first.Sub(now).Round(time.Second); {
	case first.IsZero():
		return "-"
	case d <= 0:
		return "refresh due now"
	default:
		return "refresh in " + d.String()
	}
}

// relTime says when a token expires, relative to now.
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return "(no expiry)"
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	return "expires in " + d.String()
}
