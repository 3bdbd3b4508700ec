package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/demo"
)

// demoOptions are the flags of `mailoauth demo`.
type demoOptions struct {
	Dir string
}

func newDemoCmd(g *Globals) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run mailoauth end to end against its offline emulator (no account needed)",
		Long: "demo starts mailoauth's emulator of the Microsoft identity platform and Exchange Online on\n" +
			"127.0.0.1, with a temporary config and token store (your own are not touched), then: signs a\n" +
			"demo user in with the device code flow, stores the tokens, logs in over IMAP with XOAUTH2,\n" +
			"sends a message over SMTP and one through Microsoft Graph, reads both back, and does the same\n" +
			"as an app with client credentials and a certificate. Each step is printed in plain words.\n\n" +
			"Exit status: 0 when every step worked, 1 otherwise (the failed step, its reason and a hint\n" +
			"are printed).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDemo(cmd.Context(), g, o) },
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "keep the emulator's CA, the demo config and token store in this folder (default: a temporary one, removed)")
	return cmd
}

func runDemo(ctx context.Context, g *Globals, o *demoOptions) error {
	err := demo.Run(ctx, g.Out, demo.Options{Logger: g.Logger, Dir: o.Dir})
	var se *demo.StepError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &se):
		// demo.Run has printed the step, the reason and the hint.
		return &SilentError{Code: ExitError}
	}
	return fmt.Errorf("demo: %w", err)
}
