package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/paths"
	"github.com/mailoauth/mailoauth/internal/proxy"
	"github.com/mailoauth/mailoauth/mailclient"
)

// ProxyOptions are the inputs of `mailoauth proxy`.
type ProxyOptions struct {
	G *Globals
	// ShutdownTimeout bounds how long logged-in sessions may go on after
	// SIGTERM before they are cut.
	ShutdownTimeout time.Duration
	// Token overrides the token source (tests); nil = the accounts' own
	// refresh engine through internal/account.
	Token proxy.TokenFunc
	// Ready, when set, is called with each protocol's listening address
	// once all listeners are up (tests).
	Ready func(addrs map[string]string)
}

func newProxyCmd(g *Globals) *cobra.Command {
	o := &ProxyOptions{G: g}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the local IMAP/POP3/SMTP proxy for mail clients that only know passwords",
		Long: "proxy listens where the config's [proxy.imap], [proxy.pop3] and [proxy.smtp] tables say\n" +
			"(127.0.0.1 unless the config names another address). A mail client logs in with the\n" +
			"account's email as user name and the password set with `mailoauth proxy passwd`; the\n" +
			"proxy then logs in to the real server with the account's OAuth token and relays the\n" +
			"session unchanged. SIGTERM or Ctrl-C stops accepting and lets sessions finish for\n" +
			"--shutdown-timeout.",
		Example: "  mailoauth proxy passwd work\n  mailoauth proxy -v",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return RunProxy(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long sessions may finish after SIGTERM")
	cmd.AddCommand(newProxyPasswdCmd(g))
	return cmd
}

// proxyStateDir is where the password file and a generated certificate live.
func proxyStateDir() (string, error) {
	dir, err := paths.StateDir()
	if err != nil {
		return "", &ConfigError{Err: fmt.Errorf("no state directory for the proxy's passwords: %w", err)}
	}
	return dir, nil
}

// RunProxy runs every configured proxy listener until ctx ends.
func RunProxy(ctx context.Context, o *ProxyOptions) error {
	g := o.G
	cfg, err := g.Config()
	if err != nil {
		return err
	}
	if len(cfg.Proxies) == 0 {
		return &ConfigError{Err: errors.New("no proxy is configured: add a [proxy.imap], [proxy.pop3] or [proxy.smtp] table")}
	}
	state, err := proxyStateDir()
	if err != nil {
		return err
	}
	pw := proxy.OpenPasswordFile(filepath.Join(state, proxy.PasswordFileName))
	token := o.Token
	rejected := &tokenRejections{log: g.Logger, last: map[string]time.Time{}}
	if token == nil {
		m, err := openAccounts(ctx, g)
		if err != nil {
			return err
		}
		defer m.Close()
		token = accountTokens(m)
		rejected.m = m
	}

	type listener struct {
		proto string
		srv   *proxy.Server
		ln    net.Listener
		p     *config.Proxy
	}
	var lns []listener
	defer func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}()
	warned := map[string]bool{}
	for _, proto := range slices.Sorted(maps.Keys(cfg.Proxies)) {
		p := cfg.Proxies[proto]
		pc, err := proxyConfig(cfg, p, state, g)
		if err != nil {
			return err
		}
		pc.Token, pc.Passwords, pc.Logger = token, pw, g.Logger
		pc.Rejected = rejected.hook(proto)
		for _, a := range p.Accounts {
			if ok, err := pw.Has(a); err != nil {
				return err
			} else if !ok && !warned[a] {
				warned[a] = true
				fmt.Fprintf(g.ErrOut, "mailoauth: warning: account %s has no proxy password yet: run mailoauth proxy passwd %s\n", a, a)
			}
		}
		srv, err := proxy.New(pc)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", p.Listen)
		if err != nil {
			return fmt.Errorf("proxy %s: %w", proto, err)
		}
		lns = append(lns, listener{proto, srv, ln, p})
	}
	addrs := map[string]string{}
	for _, l := range lns {
		addrs[l.proto] = l.ln.Addr().String()
		fmt.Fprintf(g.Out, "%s: listening on %s (local TLS: %s) for %s\n", l.proto, l.ln.Addr(), l.p.TLS, strings.Join(l.p.Accounts, ", "))
	}
	if o.Ready != nil {
		o.Ready(addrs)
	}

	errc := make(chan error, len(lns))
	var wg sync.WaitGroup
	probeCtx, cancelProbe := context.WithTimeout(ctx, 20*time.Second)
	defer cancelProbe()
	freshCtx, stopFresh := context.WithCancel(ctx)
	defer stopFresh()
	for _, l := range lns {
		wg.Go(func() { l.srv.Probe(probeCtx) })
		wg.Go(func() { l.srv.KeepTokensFresh(freshCtx, tokenWarmInterval) })
		wg.Go(func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, proxy.ErrServerClosed) {
				errc <- fmt.Errorf("proxy %s: %w", l.proto, err)
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancelProbe()
	stopFresh()
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	// All listeners at once: each gets the whole --shutdown-timeout.
	var sw sync.WaitGroup
	for _, l := range lns {
		sw.Go(func() {
			if err := l.srv.Shutdown(sctx); err != nil {
				g.Logger.Warn("sessions cut at shutdown", "proxy", l.proto, "after", o.ShutdownTimeout, "err", err)
			}
		})
	}
	sw.Wait()
	wg.Wait()
	return runErr
}

// tokenWarmInterval is how often the proxy asks for each account's token
// between logins, so the refresh engine refreshes ahead of expiry (its own
// margin decides when) rather than during a client's login.
const tokenWarmInterval = time.Minute

// accountTokens gets tokens from the accounts' refresh engine: the proxy's
// protocol names map onto internal/account's resources.
func accountTokens(m *account.Manager) proxy.TokenFunc {
	return func(ctx context.Context, name, protocol string) (string, error) {
		a, err := m.Account(name)
		if err != nil {
			return "", err
		}
		res := proxyResource(protocol)
		tok, err := a.Token(ctx, res)
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	}
}

// proxyResource maps a proxy protocol onto internal/account's resource.
func proxyResource(protocol string) string {
	return map[string]string{"imap": account.ResourceIMAP, "pop3": account.ResourcePOP, "smtp": account.ResourceSMTP}[protocol]
}

// tokenRejections handles a token the mail server refused although it had
// not expired (revoked, a policy change): the account's cached access token
// is dropped so the next client login gets a freshly refreshed one, at most
// once per account and protocol per rejectionCooldown so a server that
// refuses every token (IMAP turned off for the mailbox) cannot make each
// login a token request. The cool-down is per protocol because each
// listener's refusal is news of its own: a POP3 refusal that just dropped
// a token must not keep an SMTP refusal a second later from dropping the
// one SMTP was refused. Every refusal is logged with the command that
// tells why.
type tokenRejections struct {
	m   *account.Manager // nil when tokens come from ProxyOptions.Token
	log interface {
		Warn(msg string, args ...any)
		Error(msg string, args ...any)
	}
	mu   sync.Mutex
	last map[string]time.Time // by account and protocol
}

// rejectionCooldown is the least time between two invalidations of one
// account's token on one protocol.
const rejectionCooldown = time.Minute

// due says whether a refusal for acct on proto at now may drop the token,
// and if so starts its cool-down.
func (r *tokenRejections) due(acct, proto string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := acct + "\x00" + proto
	if last, ok := r.last[key]; ok && now.Sub(last) < rejectionCooldown {
		return false
	}
	r.last[key] = now
	return true
}

func (r *tokenRejections) hook(proto string) func(ctx context.Context, acct, token string, err error) {
	return func(ctx context.Context, acct, token string, _ error) {
		if r.m == nil {
			r.log.Warn("the mail server refused the account's token; run mailoauth check "+acct+" to see why",
				"account", acct, "proxy", proto)
			return
		}
		if !r.due(acct, proto, time.Now()) {
			r.log.Warn("the mail server refused the account's token again within a minute, so it is kept until its refresh; run mailoauth check "+acct+" to see why",
				"account", acct, "proxy", proto)
			return
		}
		a, err := r.m.Account(acct)
		if err == nil {
			res := proxyResource(proto)
			err = a.Invalidate(ctx, res, token)
		}
		if err != nil {
			r.log.Error("the mail server refused the account's token and it could not be dropped", "account", acct, "proxy", proto, "err", err)
			return
		}
		r.log.Warn("the mail server refused the account's token; the next login gets a fresh one (if it is refused too, run mailoauth check "+acct+")",
			"account", acct, "proxy", proto)
	}
}

// proxyConfig turns one [proxy.X] table into the proxy package's Config:
// each account's upstream (the table's, else the account's own server),
// its CA file and SASL choice, and the local certificate.
func proxyConfig(cfg *config.Config, p *config.Proxy, state string, g *Globals) (proxy.Config, error) {
	pc := proxy.Config{
		Protocol:                 p.Protocol,
		TLS:                      p.TLS,
		MaxConnections:           p.MaxConnections,
		MaxConnectionsPerAccount: p.MaxConnectionsPerAccount,
		IdleTimeout:              p.IdleTimeout,
	}
	for _, name := range p.Accounts {
		a := cfg.Accounts[name]
		if a == nil {
			return pc, &ConfigError{Err: fmt.Errorf("proxy.%s: no account %q", p.Protocol, name)}
		}
		up := p.Upstream
		if up == nil {
			up = map[string]*config.Server{"imap": a.IMAP, "pop3": a.POP3, "smtp": a.SMTP}[p.Protocol]
		}
		if up == nil {
			return pc, &ConfigError{Err: fmt.Errorf("proxy.%s: account %s has no %s server", p.Protocol, name, p.Protocol)}
		}
		srv, err := mailclient.ParseURL(up.URL)
		if err != nil {
			return pc, &ConfigError{Err: fmt.Errorf("proxy.%s: %w", p.Protocol, err)}
		}
		tc, err := mailclient.TLSConfig(a.CAFile)
		if err != nil {
			return pc, &ConfigError{Err: fmt.Errorf("account %s: %w", name, err)}
		}
		mech := strings.ToUpper(a.SASL)
		if mech == "AUTO" {
			mech = ""
		}
		pc.Accounts = append(pc.Accounts, proxy.Account{Name: name, Email: a.Email, Upstream: srv, UpstreamTLS: tc, Mechanism: mech})
	}
	if p.TLS != proxy.TLSNone {
		path := p.TLSCert
		if path == "" {
			path = filepath.Join(state, proxy.CertFileName)
		}
		cert, made, err := proxy.LoadOrCreateCert(path)
		if err != nil {
			return pc, err
		}
		if made {
			fmt.Fprintf(g.ErrOut, "mailoauth: generated a self-signed certificate for the proxy: %s (mail clients will ask to trust it)\n", path)
		}
		pc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return pc, nil
}

func newProxyPasswdCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "passwd ACCOUNT",
		Short: "Set the password mail clients use for ACCOUNT on the local proxy",
		Long: "passwd sets the local password for ACCOUNT on the proxy (not the account's real password,\n" +
			"which mailoauth never needs). It is read from the terminal twice, or from the first line of\n" +
			"stdin when stdin is not a terminal, and stored as an argon2id hash (mode 0600) in the state\n" +
			"directory. A running proxy picks the change up at the next login.",
		Example: "  mailoauth proxy passwd work\n  printf '%s\\n' \"$PW\" | mailoauth proxy passwd work",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProxyPasswd(g, args[0])
		},
	}
}

func runProxyPasswd(g *Globals, name string) error {
	a, err := g.Account(name)
	if err != nil {
		return err
	}
	cfg, _ := g.Config()
	listed := false
	for _, p := range cfg.Proxies {
		listed = listed || slices.Contains(p.Accounts, name)
	}
	if !listed {
		fmt.Fprintf(g.ErrOut, "mailoauth: warning: account %s is in no proxy's accounts list, so it cannot log in yet\n", name)
	}
	state, err := proxyStateDir()
	if err != nil {
		return err
	}
	pw, err := readNewPassword(g, name)
	if err != nil {
		return err
	}
	f := proxy.OpenPasswordFile(filepath.Join(state, proxy.PasswordFileName))
	if err := f.Set(name, pw); err != nil {
		return err
	}
	user := a.Email
	if user == "" {
		user = "(the account's email, once set)"
	}
	fmt.Fprintf(g.ErrOut, "Proxy password for %s set (argon2id hash in %s). Mail clients log in as %s.\n", name, f.Path(), user)
	return nil
}

// maxPasswordLen bounds what is read from stdin.
const maxPasswordLen = 1024

func readNewPassword(g *Globals, name string) (string, error) {
	if f, ok := g.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(g.ErrOut, "New proxy password for %s: ", name)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.ErrOut)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		fmt.Fprint(g.ErrOut, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.ErrOut)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords differ")
		}
		if len(p1) == 0 {
			return "", errors.New("the password is empty")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReaderSize(io.LimitReader(g.In, maxPasswordLen+2), maxPasswordLen+2).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	if len(line) > maxPasswordLen && !strings.HasSuffix(line, "\n") {
		return "", fmt.Errorf("the password on stdin is longer than %d bytes", maxPasswordLen)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}
