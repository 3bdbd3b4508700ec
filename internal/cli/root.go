// Package cli wires the mailoauth command line: it parses flags, loads the
// config and hands off to the library packages. No protocol logic lives here.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Globals are the flags every command shares, and the streams it writes to.
// Tests build one by hand with buffers for the streams.
type Globals struct {
	ConfigPath string // --config, else $MAILOAUTH_CONFIG, else the XDG default
	JSON       bool   // --json: machine output on stdout
	Verbose    int    // -v, repeatable

	In     io.Reader
	Out    io.Writer // results, machine output
	ErrOut io.Writer // humans: URLs, codes, progress, hints

	Logger *slog.Logger

	cfg configCache // the config, loaded once by Config()
}

// Main runs the command line with the process's arguments and streams and
// returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &Globals{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	return Run(ctx, g, os.Args[1:])
}

// Run executes one command line against g and returns the exit code.
func Run(ctx context.Context, g *Globals, args []string) int {
	root := NewRootCmd(g)
	root.SetArgs(args)
	root.SetIn(g.In)
	root.SetOut(g.Out)
	root.SetErr(g.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	err = usageError(err)
	var silent *SilentError
	if !errors.As(err, &silent) {
		fmt.Fprintf(g.ErrOut, "mailoauth: %v\n", err)
	}
	return ExitCode(err)
}

// NewRootCmd builds the command tree. Every subcommand is added here, in one
// place, so the tree can be read at a glance.
func NewRootCmd(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "mailoauth",
		Short:         "OAuth 2.0 tokens for IMAP, POP3, SMTP and Microsoft Graph mail",
		Long:          "mailoauth gets OAuth 2.0 tokens from Microsoft, Google or any OpenID Connect server,\nkeeps them encrypted and fresh, and uses them for mail.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.ConfigPath == "" {
				g.ConfigPath = os.Getenv("MAILOAUTH_CONFIG")
			}
			level := slog.LevelWarn
			switch {
			case g.Verbose >= 2:
				level = slog.LevelDebug
			case g.Verbose == 1:
				level = slog.LevelInfo
			}
			if g.Logger == nil {
				g.Logger = slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: level}))
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &FlagError{Err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigPath, "config", "", "config file (default $MAILOAUTH_CONFIG, else $XDG_CONFIG_HOME/mailoauth/config.toml)")
	pf.BoolVar(&g.JSON, "json", false, "machine-readable output on stdout")
	pf.CountVarP(&g.Verbose, "verbose", "v", "more log output on stderr (repeat for debug)")

	root.AddCommand(
		newVersionCmd(g),
		newConfigCmd(g),
		newEmulatorCmd(g),
		newLoginCmd(g, nil),
		newConsentCmd(g, nil),
		newTokenCmd(g, nil),
		newStatusCmd(g, nil),
		newLogoutCmd(g, nil),
		newServeCmd(g, nil),
		newCheckCmd(g),
		newSendCmd(g),
		newDemoCmd(g),
		newProxyCmd(g),
		newDoctorCmd(g),
	)
	return root
}
