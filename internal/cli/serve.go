package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/daemon"
	"github.com/mailoauth/mailoauth/tokens"
)

// ServeOptions are the inputs of `mailoauth serve`.
type ServeOptions struct {
	G                  *Globals
	MetricsAllowRemote bool
	ShutdownTimeout    time.Duration
	// Ready, when set, is called once the socket is bound (tests).
	Ready func(*daemon.Daemon)
}

func newServeCmd(g *Globals, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	o := &ServeOptions{G: g}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Keep every account's tokens fresh in the background and answer `mailoauth token` on a socket",
		Long: "serve runs until stopped (SIGTERM or Ctrl-C). It refreshes each logged-in account's access\n" +
			"tokens shortly before they expire and answers `mailoauth token` over HTTP on a Unix socket\n" +
			"([serve] socket, default $XDG_RUNTIME_DIR/mailoauth/daemon.sock, mode 0600), so a mail\n" +
			"client's token call is one local request. Accounts logged in later are picked up within a\n" +
			"minute, or at once on SIGHUP.\n\n" +
			"Hooks ([serve] on_relogin, on_error, on_token) run with sh -c and get MAILOAUTH_EVENT (relogin,\n" +
			"error; for on_token: refreshed, new for a login found, removed after a logout),\n" +
			"MAILOAUTH_ACCOUNT, MAILOAUTH_RESOURCE, MAILOAUTH_REASON, MAILOAUTH_COMMAND and MAILOAUTH_EXPIRY\n" +
			"in their environment; never a token. [serve] metrics = \"127.0.0.1:9464\" serves Prometheus\n" +
			"metrics at /metrics on that loopback address.\n\n" +
			"A systemd user unit is in contrib/systemd/mailoauth.service.",
		Example: "  mailoauth serve\n  systemctl --user enable --now mailoauth.service",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF == nil {
				runF = runServe
			}
			return runF(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.MetricsAllowRemote, "metrics-allow-remote", false, "allow a non-loopback [serve] metrics address (other machines can read it)")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "on SIGTERM, how long in-flight refreshes, requests and hooks may take")
	return cmd
}

func runServe(ctx context.Context, o *ServeOptions) error {
	g := o.G
	cfg, err := g.Config()
	if err != nil {
		return err
	}
	// A daemon logs what it does at Info (journald keeps it); -v for debug.
	level := slog.LevelInfo
	if g.Verbose >= 2 {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: level}))
	d, err := daemon.New(daemon.Options{
		Socket:             cfg.Serve.Socket,
		ConfigFile:         cfg.File,
		Metrics:            cfg.Serve.Metrics,
		MetricsAllowRemote: o.MetricsAllowRemote,
		Hooks:              daemon.Hooks{OnRelogin: cfg.Serve.OnRelogin, OnError: cfg.Serve.OnError, OnToken: cfg.Serve.OnToken},
		ShutdownTimeout:    o.ShutdownTimeout,
		Logger:             log,
	})
	if err != nil {
		return &ConfigError{Err: err}
	}
	if err := d.Listen(); err != nil {
		return err
	}
	opts := account.Options{Logger: log, Source: tokens.Config{Notify: d.Notify, Holder: daemon.Holder(cfg.Serve.Socket), Logger: log}}
	m, err := account.Open(ctx, cfg, opts)
	if err != nil {
		d.Close()
		return storeKeyHint(cfg, err)
	}
	defer m.Close()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: looking for new logins")
				d.Rescan()
			case <-sctx.Done():
				return
			}
		}
	}()
	if o.Ready != nil {
		o.Ready(d)
	}
	return d.Serve(sctx, daemon.FromManager(m, opts))
}

// runTokenViaDaemon is `mailoauth token` through a running daemon: when
// the config's socket exists and a daemon answers, it prints the token (or
// reports the error) and returns done. With no daemon (no socket, nobody
// listening, a daemon serving another config without this account) it
// returns done=false and the caller reads the store itself.
// MAILOAUTH_NO_DAEMON=1 skips the daemon.
func runTokenViaDaemon(ctx context.Context, o *TokenOptions) (done bool, err error) {
	g := o.G
	if os.Getenv("MAILOAUTH_NO_DAEMON") != "" {
		return false, nil
	}
	cfg, err := g.Config()
	if err != nil {
		return true, err
	}
	ac, err := g.Account(o.Account)
	if err != nil {
		return true, err
	}
	if cfg.Serve.Socket == "" {
		return false, nil
	}
	if _, err := os.Stat(cfg.Serve.Socket); err != nil {
		return false, nil
	}
	tok, user, err := (&daemon.Client{Socket: cfg.Serve.Socket, Config: cfg.File}).Token(ctx, o.Account, o.Resource)
	switch {
	case errors.Is(err, daemon.ErrNoDaemon), errors.Is(err, config.ErrNoAccount):
		if g.Logger != nil {
			g.Logger.Debug("daemon not used; reading the store", "err", err)
		}
		return false, nil
	case err != nil:
		return true, reportError(g, err)
	}
	if ac.Email != "" {
		user = ac.Email
	}
	return true, printToken(g, o, tok, user)
}
