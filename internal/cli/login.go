package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/loopback"
	"github.com/mailoauth/mailoauth/internal/qr"
	"github.com/mailoauth/mailoauth/oauth"
)

// LoginOptions are the inputs of `mailoauth login`.
type LoginOptions struct {
	G         *Globals
	Account   string
	NoBrowser bool
	// Paste reads the final redirect URL from stdin (the browser runs
	// elsewhere). It is also on by itself over SSH or without a display.
	Paste   bool
	Timeout time.Duration
	// Browser replaces the system browser (tests).
	Browser oauth.Browser

	pasteOnly bool // the redirect cannot reach a listener: pasting is the only way back
}

func newLoginCmd(g *Globals, runF func(context.Context, *LoginOptions) error) *cobra.Command {
	o := &LoginOptions{G: g}
	cmd := &cobra.Command{
		Use:   "login ACCOUNT",
		Short: "Sign an account in and store its tokens",
		Long: "login runs the account's flow and stores the tokens, encrypted:\n" +
			"  device              prints a URL and a code (and a QR code on a terminal); sign in on any device\n" +
			"  authcode            opens the browser (and prints the URL) with a redirect to a listener on 127.0.0.1;\n" +
			"                      --paste (automatic over SSH or without a display) reads the final URL from stdin\n" +
			"  client_credentials  fetches an app token, which proves the secret or certificate works\n" +
			"  password            only when the config asks for it; fails for accounts with MFA\n" +
			"On failure it prints the server's error and a hint; --json prints every field.",
		Example: "  mailoauth login work\n  mailoauth login gmail --no-browser --paste",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Account = args[0]
			if runF == nil {
				runF = runLogin
			}
			return runF(cmd.Context(), o)
		},
	}
	addBrowserFlags(cmd, &o.NoBrowser, &o.Paste, &o.Timeout, "the browser sign-in")
	return cmd
}

// addBrowserFlags adds the flags of a browser flow, shared by login and
// consent so both spell and mean them the same.
func addBrowserFlags(cmd *cobra.Command, noBrowser, paste *bool, timeout *time.Duration, waitFor string) {
	f := cmd.Flags()
	f.BoolVar(noBrowser, "no-browser", false, "print the URL without opening a browser")
	f.BoolVar(paste, "paste", false, "read the final redirect URL from stdin (browser on another machine; automatic over SSH or without a display)")
	f.DurationVar(timeout, "timeout", oauth.DefaultTimeout, "how long to wait for "+waitFor)
}

// noDisplay reports whether a browser opened here could not reach the user:
// an SSH session, or a Unix desktop-less session. Then the pasted URL is
// the only way back.
func noDisplay() bool {
	if os.Getenv("SSH_CONNECTION") != "" || os.Getenv("SSH_TTY") != "" {
		return true
	}
	switch runtime.GOOS {
	case "windows", "darwin", "ios", "android":
		return false
	}
	return os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == ""
}

func runLogin(ctx context.Context, o *LoginOptions) error {
	g := o.G
	m, a, err := openAccount(ctx, g, o.Account)
	if err != nil {
		return err
	}
	defer m.Close()
	if ru := a.Config().RedirectURI; a.Config().Flow == config.FlowAuthCode && ru != "" {
		if _, err := loopback.ParseRedirectURI(ru); err != nil {
			// An https (web app) redirect cannot come back to a
			// listener here: the final URL is pasted.
			po := *o
			po.Paste, po.pasteOnly = true, true
			o = &po
		}
	}
	ui, stop := loginUI(g, o)
	res, err := a.Login(ctx, ui)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// Ctrl-C: say so plainly instead of "context canceled".
			err = fmt.Errorf("interrupted, nothing was stored (%w)", context.Canceled)
		}
		rerr := reportError(g, fmt.Errorf("login %s: %w", a.Name(), err))
		if se, ok := rerr.(*SilentError); ok && se.Code == ExitRelogin {
			// Exit code 4 tells scripts to run login; a login that
			// failed (wrong password, a spent code) is an ordinary error.
			se.Code = ExitError
		}
		return rerr
	}
	if g.JSON {
		return writeJSON(g.Out, res)
	}
	who := res.Email
	if who == "" {
		who = "(mailbox unknown: set email in the config)"
	}
	fmt.Fprintf(g.ErrOut, "Logged in %s as %s (%s).\n", res.Account, who, res.Flow)
	if !res.Expiry.IsZero() {
		fmt.Fprintf(g.ErrOut, "Access token for %s valid until %s.\n", res.Resource, res.Expiry.Local().Format(time.DateTime))
	}
	if len(res.Scopes) > 0 {
		fmt.Fprintf(g.ErrOut, "Scopes: %s\n", strings.Join(res.Scopes, " "))
	}
	if !res.Refresh && !a.AppOnly() {
		fmt.Fprintln(g.ErrOut, "Warning: no refresh token was granted (add offline_access to scopes); you will have to log in again when this token expires.")
	}
	return nil
}

// askPassword reads the password grant's password from the terminal without
// echo; with no terminal on stdin there is nobody to ask, so it returns nil
// and the login fails with what to put in the config instead.
func askPassword(g *Globals) func() (string, error) {
	f, ok := g.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func() (string, error) {
		fmt.Fprint(g.ErrOut, "Password: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.ErrOut)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return string(pw), nil
	}
}

// loginUI prints what the user must see: the device URL, code, QR code and
// countdown, or the browser URL. stop ends the countdown.
func loginUI(g *Globals, o *LoginOptions) (account.LoginUI, func()) {
	errFile, _ := g.ErrOut.(*os.File)
	tty := qr.ShouldDraw(errFile)
	var (
		mu      sync.Mutex
		stopped = make(chan struct{})
		done    sync.WaitGroup
		once    sync.Once
	)
	stop := func() {
		once.Do(func() { close(stopped) })
		done.Wait()
		if tty {
			mu.Lock()
			fmt.Fprint(g.ErrOut, "\r\033[K")
			mu.Unlock()
		}
	}
	ui := account.LoginUI{
		Warn:     func(msg string) { fmt.Fprintf(g.ErrOut, "Warning: %s\n", msg) },
		Password: askPassword(g),
		Device: func(p oauth.DevicePrompt) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(g.ErrOut, "To sign in, open %s and enter the code %s\n", p.VerificationURI, p.UserCode)
			if tty {
				qr.Write(g.ErrOut, p.QRText())
			}
			if p.Expiry.IsZero() {
				return
			}
			if !tty {
				fmt.Fprintf(g.ErrOut, "The code expires at %s.\n", p.Expiry.Local().Format(time.TimeOnly))
				return
			}
			done.Add(1)
			go countdown(g.ErrOut, &mu, p.Expiry, stopped, done.Done)
		},
	}
	it := oauth.Interaction{
		Browser:   o.Browser,
		NoBrowser: o.NoBrowser,
		Timeout:   o.Timeout,
		ShowURL: func(u string) {
			fmt.Fprintf(g.ErrOut, "Open this URL in a browser to sign in:\n\n  %s\n\n", u)
		},
		Notify: func(msg string) { fmt.Fprintf(g.ErrOut, "%s\n", msg) },
	}
	if o.Paste || noDisplay() {
		it.Paste = g.In
		if !o.Paste {
			it.NoBrowser = true
		}
		it.ShowURL = func(u string) {
			fmt.Fprintf(g.ErrOut, "Open this URL in a browser to sign in:\n\n  %s\n\n", u)
			if o.pasteOnly {
				fmt.Fprintln(g.ErrOut, "After signing in, paste the full URL the browser ends on here and press Enter.")
			} else {
				fmt.Fprintln(g.ErrOut, "If the browser cannot reach this machine, paste the full URL it ends on here and press Enter.")
			}
		}
	}
	ui.Interaction = it
	return ui, stop
}

// countdown rewrites one terminal line every second with the time left.
func countdown(w io.Writer, mu *sync.Mutex, expiry time.Time, stopped <-chan struct{}, done func()) {
	defer done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		left := time.Until(expiry).Round(time.Second)
		if left < 0 {
			left = 0
		}
		mu.Lock()
		fmt.Fprintf(w, "\r\033[KWaiting for the sign-in… the code expires in %s", left)
		mu.Unlock()
		select {
		case <-stopped:
			return
		case <-t.C:
		}
	}
}
