package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// LogoutOptions are the inputs of `mailoauth logout`.
type LogoutOptions struct {
	G       *Globals
	Account string
}

func newLogoutCmd(g *Globals, runF func(context.Context, *LogoutOptions) error) *cobra.Command {
	o := &LogoutOptions{G: g}
	return &cobra.Command{
		Use:   "logout ACCOUNT",
		Short: "Forget an account's tokens (revoking them where the provider can)",
		Long: "logout deletes the account's tokens from the store, after revoking the refresh token\n" +
			"at providers with a revocation endpoint (Google, OIDC servers advertising one).\n" +
			"Microsoft has none: revoke sessions at https://myaccount.microsoft.com if needed.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Account = args[0]
			if runF == nil {
				runF = runLogout
			}
			return runF(cmd.Context(), o)
		},
	}
}

func runLogout(ctx context.Context, o *LogoutOptions) error {
	g := o.G
	m, a, err := openAccount(ctx, g, o.Account)
	if err != nil {
		return err
	}
	defer m.Close()
	res, err := a.Logout(ctx)
	if err != nil {
		return reportError(g, err)
	}
	if g.JSON {
		return writeJSON(g.Out, res)
	}
	switch {
	case !res.Forgot:
		fmt.Fprintf(g.ErrOut, "%s was not logged in.\n", a.Name())
	case res.Revoked:
		fmt.Fprintf(g.ErrOut, "Logged out %s: refresh token revoked and tokens deleted.\n", a.Name())
	default:
		fmt.Fprintf(g.ErrOut, "Logged out %s: tokens deleted.\n", a.Name())
	}
	if res.RevokeError != "" {
		fmt.Fprintf(g.ErrOut, "Warning: the provider did not revoke the refresh token: %s\n", res.RevokeError)
	}
	return nil
}
