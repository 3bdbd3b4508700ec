// Package daemon is `mailoauth serve` and its client: a background process
// that keeps every logged-in account's access tokens fresh and hands them out
// over HTTP on a Unix socket, so a mail client's `mailoauth token` call costs
// one local request instead of opening and decrypting the token store.
//
// The server:
//
//	d, err := daemon.New(daemon.Options{Socket: cfg.Serve.Socket, Hooks: …})
//	err = d.Listen() // refuses if another daemon answers
//	opts := account.Options{Source: tokens.Config{Notify: d.Notify, Holder: daemon.Holder(cfg.Serve.Socket)}}
//	m, err := account.Open(ctx, cfg, opts)
//	err = d.Serve(ctx, daemon.FromManager(m, opts)) // until ctx ends, then a clean shutdown
//
// The client (what `mailoauth token` does first):
//
//	tok, user, err := (&daemon.Client{Socket: path, Config: cfg.File}).Token(ctx, "work", "imap")
//	if errors.Is(err, daemon.ErrNoDaemon) { /* read the store itself */ }
//
// The wire protocol (all JSON, GET only):
//
//	GET /v1/token?account=A&resource=R[&config=FILE]
//	                                    → 200 {"access_token","token_type","expiry","scope","user"}
//	                                    → 4xx/5xx {"error": code, "message", "account", "reason", "command"}
//	GET /v1/status                      → 200 Status
//
// Security: the socket's directory is created 0700 and the socket is 0600,
// so only the owner can connect; nothing the daemon logs, puts in a hook's
// environment, or returns in an error holds a token.
package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/tokens"
)

// Options configure a daemon. Only Socket is required.
type Options struct {
	// Socket is the Unix socket path (config [serve] socket).
	Socket string
	// ConfigFile is the config file the daemon serves; a client naming
	// another one gets ErrNoDaemon and reads its own store. "" accepts all.
	ConfigFile string
	// Metrics is the host:port of the /metrics listener, "" for none. It
	// must be a loopback address unless MetricsAllowRemote is set:
	// token expiry times and account names are nobody else's business.
	Metrics            string
	MetricsAllowRemote bool
	// Hooks are the commands run on events (config [serve] on_*).
	Hooks Hooks
	// HookTimeout bounds one hook run; it is killed after. Default 30s.
	HookTimeout time.Duration
	// Rescan is how often the store is read for accounts logged in (or
	// out) since the last look. Default 1 minute. Rescan() asks at once.
	Rescan time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests, refreshes and
	// hooks after the context ends. Default 20 seconds (systemd waits 90).
	ShutdownTimeout time.Duration
	// RetryMin and RetryMax bound the scheduler's wait after a failed
	// refresh (doubling from RetryMin); the refresh engine adds its own
	// cool-down and the server's Retry-After. Defaults 10s and 10 minutes.
	RetryMin, RetryMax time.Duration
	// ReloginPoll is how often an account waiting for a login is looked at
	// again (a read of the store, no network). Default 1 minute.
	ReloginPoll time.Duration
	// Logger receives the daemon's log; nil means slog.Default. No line
	// holds a token.
	Logger *slog.Logger
}

// Hooks are shell commands (run with sh -c) for events, as pizauth's
// *_cmd settings. They get the facts in environment variables, never a
// token: MAILOAUTH_EVENT, MAILOAUTH_ACCOUNT, MAILOAUTH_RESOURCE,
// MAILOAUTH_REASON, MAILOAUTH_COMMAND and MAILOAUTH_EXPIRY.
type Hooks struct {
	OnRelogin string // an account needs an interactive login again
	OnError   string // a refresh failed (it is retried)
	OnToken   string // a token was refreshed, or a new login was found
}

// ErrAlreadyRunning is returned by Listen when another daemon answers on
// the socket (or holds its lock).
var ErrAlreadyRunning = errors.New("another mailoauth daemon is running")

// Daemon is one `mailoauth serve`. Create it with New, bind with Listen,
// run with Serve.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	metrics *metrics
	hooks   *hookRunner
	sched   *scheduler

	ln      net.Listener
	lock    *os.File
	mln     net.Listener // metrics, or nil
	closeMu sync.Mutex
	closed  bool
}

// New checks opts and fills in the defaults; it opens nothing.
func New(opts Options) (*Daemon, error) {
	if opts.Socket == "" {
		return nil, errors.New("daemon: no socket path")
	}
	if !filepath.IsAbs(opts.Socket) {
		return nil, fmt.Errorf("daemon: socket path %q is not absolute", opts.Socket)
	}
	// sockaddr_un holds 108 bytes on Linux (104 on the BSDs), with the NUL.
	if len(opts.Socket) > 103 {
		return nil, fmt.Errorf("daemon: socket path %s is %d bytes long; Unix sockets allow at most 103: set a shorter [serve] socket", opts.Socket, len(opts.Socket))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.HookTimeout, 30*time.Second)
	def(&opts.Rescan, time.Minute)
	def(&opts.ShutdownTimeout, 20*time.Second)
	def(&opts.RetryMin, 10*time.Second)
	def(&opts.RetryMax, 10*time.Minute)
	def(&opts.ReloginPoll, time.Minute)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{opts: opts, log: log}
	d.hooks = &hookRunner{hooks: opts.Hooks, timeout: opts.HookTimeout, log: log}
	d.sched = newScheduler(d)
	d.metrics = newMetrics(d.sched)
	return d, nil
}

// Holder is the refresh-lease holder name for the daemon serving socket on
// this host: stable across restarts, so a daemon restarted by systemd in
// the middle of a refresh takes its own lease back at once, and distinct
// per socket, so two daemons sharing a PostgreSQL store never share one.
func Holder(socket string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return "mailoauth-serve@" + host + ":" + socket
}

// Notify is the tokens.Config.Notify of every Source the daemon's accounts
// use: it counts refreshes and failures and runs the hooks. It never
// blocks: hooks run in their own goroutines.
func (d *Daemon) Notify(e tokens.Event) {
	d.metrics.event(e)
	switch e.Type {
	case tokens.EventRefreshed:
		d.log.Info("token refreshed", "account", e.Account, "resource", e.Resource, "expiry", e.Expiry)
		d.hooks.run(hookEvent{Event: "refreshed", Account: e.Account, Resource: e.Resource, Expiry: e.Expiry})
	case tokens.EventRelogin:
		he := hookEvent{Event: "relogin", Account: e.Account, Resource: e.Resource, Command: tokens.LoginCommand(e.Account)}
		if re, ok := errors.AsType[*tokens.ReloginError](e.Err); ok {
			he.Reason, he.Command = re.Reason, re.Command
		} else if e.Err != nil {
			he.Reason = e.Err.Error()
		}
		d.log.Warn("account needs a new login", "account", e.Account, "reason", he.Reason, "command", he.Command)
		d.hooks.run(he)
	case tokens.EventError:
		reason := ""
		if e.Err != nil {
			reason = e.Err.Error()
		}
		d.log.Warn("token refresh failed", "account", e.Account, "resource", e.Resource, "err", reason)
		d.hooks.run(hookEvent{Event: "error", Account: e.Account, Resource: e.Resource, Reason: reason})
	}
}

// Listen binds the socket (and the metrics address), refusing when another
// daemon answers on the socket and removing a stale one left by a crash.
// After Listen, call Serve or Close.
func (d *Daemon) Listen() error {
	ln, lock, err := listenSocket(d.opts.Socket, d.log)
	if err != nil {
		return err
	}
	d.ln, d.lock = ln, lock
	if d.opts.Metrics != "" {
		mln, err := listenMetrics(d.opts.Metrics, d.opts.MetricsAllowRemote)
		if err != nil {
			d.Close()
			return err
		}
		d.mln = mln
	}
	d.log.Info("daemon listening", "socket", d.opts.Socket, "metrics", d.MetricsAddr())
	return nil
}

// MetricsAddr is the bound metrics address ("" when off), for tests that
// listen on port 0.
func (d *Daemon) MetricsAddr() string {
	if d.mln == nil {
		return ""
	}
	return d.mln.Addr().String()
}

// Close releases what Listen bound (the socket file is removed). Serve
// calls it on its way out; call it directly only when Serve is not called.
func (d *Daemon) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.ln != nil {
		errs = append(errs, ignoreClosed(d.ln.Close()))
	}
	if d.mln != nil {
		errs = append(errs, ignoreClosed(d.mln.Close()))
	}
	if d.lock != nil {
		unlockFile(d.lock)
	}
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Rescan asks the scheduler to look for new logins (and logouts) now,
// instead of at the next periodic rescan; `mailoauth serve` calls it on
// SIGHUP.
func (d *Daemon) Rescan() { d.sched.kick() }

// Serve keeps acc's tokens fresh and answers on the socket until ctx ends,
// then shuts down: it stops accepting, lets in-flight requests, refreshes
// and hooks finish within ShutdownTimeout, and removes the socket. It
// returns nil after a clean shutdown.
func (d *Daemon) Serve(ctx context.Context, acc Accounts) error {
	if d.ln == nil {
		return errors.New("daemon: Serve before Listen")
	}
	defer d.Close()
	d.started = time.Now()
	d.sched.acc = acc

	api := &http.Server{
		Handler:           d.handler(acc),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	var msrv *http.Server
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(d.ln) }()
	if d.mln != nil {
		msrv = &http.Server{Handler: d.metricsHandler(), ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
		go func() { errc <- msrv.Serve(d.mln) }()
	}

	// Refreshes get a context that outlives ctx by the shutdown bound, so
	// one in flight when SIGTERM comes can store its rotated refresh token.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		d.sched.run(ctx, hard)
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		d.log.Error("daemon listener failed", "err", serveErr)
	}
	d.log.Info("daemon shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.ShutdownTimeout)
	defer cancel()
	// Stop accepting and wait for in-flight requests.
	if err := api.Shutdown(sctx); err != nil {
		d.log.Warn("requests still running at the shutdown deadline", "err", err)
		api.Close()
	}
	if msrv != nil {
		if err := msrv.Shutdown(sctx); err != nil {
			msrv.Close()
		}
	}
	d.Close()
	d.sched.stop()
	select {
	case <-schedDone:
	case <-sctx.Done():
		d.log.Warn("refreshes still running at the shutdown deadline; abandoning them")
		hardCancel()
		<-schedDone
	}
	d.hooks.stop(sctx)
	d.log.Info("daemon stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("daemon: %w", serveErr)
	}
	return nil
}

// listenMetrics binds the metrics address, refusing a non-loopback host
// unless allowRemote says the user asked for it by name.
func listenMetrics(addr string, allowRemote bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("metrics address %q: want host:port such as 127.0.0.1:9464", addr)
	}
	if !allowRemote && !isLoopback(host) {
		return nil, fmt.Errorf("metrics address %q is not a loopback address: other machines could read it; use 127.0.0.1 or pass --metrics-allow-remote", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// randomID names a hook run in logs.
func randomID() string { return rand.Text()[:8] }
