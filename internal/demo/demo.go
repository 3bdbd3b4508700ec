package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// Options configure Run.
type Options struct {
	// Logger receives debug logs of the emulator and the clients; nil
	// discards them.
	Logger *slog.Logger
	// Dir is where the emulator's CA, the config and the token store go;
	// "" uses a temporary folder removed at the end.
	Dir string
	// Prepare, when set, runs once the emulator is up and before the
	// steps: tests use it to change the scenario and watch a step fail.
	Prepare func(*Env) error
}

// StepError is the step of the demo that failed, with the reason and what
// to do about it.
type StepError struct {
	// Step is the number printed before the step ([n/7]).
	Step int
	// Title names what the step was doing, in plain words.
	Title string
	// Err is why it failed.
	Err error
	// Hint is the failing report step's hint or the OAuth error's, if any.
	Hint string
}

// Error names the step and why it failed.
func (e *StepError) Error() string {
	return fmt.Sprintf("demo step %d (%s): %v", e.Step, e.Title, e.Err)
}

// Unwrap returns the step's cause, so errors.Is and errors.As see it.
func (e *StepError) Unwrap() error { return e.Err }

// Steps is the number of numbered steps Run prints.
const Steps = 7

// Run starts the emulator, then signs in, stores tokens, logs in to IMAP,
// sends mail over SMTP and Graph, reads it back, and does the same as an
// app with client credentials and a certificate, printing each step to out
// in plain words. It returns a *StepError for the first step that fails.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	err := run(ctx, p, opts)
	var se *StepError
	if errors.As(err, &se) {
		p("")
		if se.Step == 0 {
			p("FAILED before the first step (%s): %v", se.Title, se.Err)
		} else {
			p("FAILED at step %d (%s): %v", se.Step, se.Title, se.Err)
		}
		if se.Hint != "" {
			p("  hint: %s", se.Hint)
		}
	}
	return err
}

func run(ctx context.Context, p func(string, ...any), opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	p("mailoauth demo: everything below runs offline, on 127.0.0.1, against mailoauth's emulator of")
	p("Microsoft's identity platform and Exchange Online. Nothing touches your own config or tokens.")
	p("")
	env, err := StartEnv(EnvOptions{Dir: opts.Dir, Logger: log})
	if err != nil {
		return &StepError{Step: 0, Title: "start the emulator", Err: err}
	}
	defer env.Close()
	p("Emulator started (tenant %s, user %s):", env.Demo.TenantDomain, env.User)
	for _, s := range env.Emulator.Services() {
		p("  %-9s %s", s.Name, s.URL)
	}
	p("Demo config: %s", env.ConfigFile)
	p("")
	if opts.Prepare != nil {
		if err := opts.Prepare(env); err != nil {
			return &StepError{Step: 0, Title: "prepare the emulator", Err: err}
		}
	}
	m, err := env.Open(ctx, log)
	if err != nil {
		return &StepError{Step: 0, Title: "open the token store", Err: err}
	}
	defer m.Close()
	d := &runner{ctx: ctx, env: env, m: m, p: p, log: log, nonce: nonce()}
	if err := d.run(); err != nil {
		return err
	}
	p("")
	p("All %d steps worked in %.1fs. To use your own Microsoft 365 account, write a config", Steps, time.Since(started).Seconds())
	p("(see the README) and run: mailoauth login NAME && mailoauth check NAME")
	return nil
}

// runner carries what the steps share.
type runner struct {
	ctx   context.Context
	env   *Env
	m     *account.Manager
	p     func(string, ...any)
	log   *slog.Logger
	nonce string
}

func nonce() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *runner) step(n int, title string) { d.p("[%d/%d] %s", n, Steps, title) }

// fail builds the step's error, taking the hint from a failed report or an
// OAuth error.
func fail(n int, title string, rep *mailclient.Report, err error) *StepError {
	se := &StepError{Step: n, Title: title, Err: err}
	if rep != nil {
		for _, s := range rep.Steps {
			if !s.OK && s.Hint != "" {
				se.Hint = s.Hint
			}
		}
	}
	var oe *oauth.Error
	if se.Hint == "" && errors.As(err, &oe) {
		se.Hint = oe.Hint
	}
	if err == nil {
		se.Err = errors.New("the check did not pass")
	}
	return se
}

// show prints a report's steps, indented under the demo step.
func (d *runner) show(rep *mailclient.Report) {
	for _, line := range strings.Split(strings.TrimRight(rep.String(), "\n"), "\n") {
		d.p("      %s", line)
	}
}

func (d *runner) run() error {
	user, err := d.m.Account(UserAccount)
	if err != nil {
		return &StepError{Step: 1, Title: "open the account", Err: err}
	}

	// 1. Device code sign-in through the real login code path.
	const t1 = "sign in with the device code flow"
	d.step(1, "Signing in "+d.env.User+" with the device code flow (as `mailoauth login demo` does)")
	var approveErr error
	res, err := user.Login(d.ctx, account.LoginUI{Device: func(pr oauth.DevicePrompt) {
		d.p("      A user would see: To sign in, open %s and enter the code %s", pr.VerificationURI, pr.UserCode)
		d.p("      The demo approves that code itself, as %s, through the emulator's admin API", d.env.User)
		d.p("      (you would open the page in a browser and sign in there).")
		approveErr = d.env.Emulator.ApproveDeviceCodeAs(pr.UserCode, d.env.User)
	}})
	if approveErr != nil {
		return fail(1, t1, nil, fmt.Errorf("approve the device code: %w", approveErr))
	}
	if err != nil {
		return fail(1, t1, nil, err)
	}
	refresh := "no refresh token"
	if res.Refresh {
		refresh = "a refresh token"
	}
	d.p("      ok: signed in; got an access token for %s (valid until %s) and %s",
		res.Resource, res.Expiry.Local().Format("15:04:05"), refresh)

	// 2. The store.
	const t2 = "store the tokens"
	d.step(2, "Storing the tokens in the encrypted token store")
	if _, err := tokens.LoadToken(d.ctx, d.m.Store(), UserAccount, tokens.KindRefresh); err != nil {
		return fail(2, t2, nil, fmt.Errorf("the refresh token is not in the store: %w", err))
	}
	d.p("      ok: saved in %s (AES-256-GCM; the key is in a file beside it for the demo)", strings.TrimPrefix(d.env.Config.Store, "sqlite:"))

	// 3. IMAP login with XOAUTH2.
	const t3 = "log in over IMAP"
	d.step(3, "Logging in over IMAP with XOAUTH2, with a token read back from the store")
	rep, err := d.check(user, "imap", 0)
	if err != nil || !rep.OK() {
		return fail(3, t3, rep, err)
	}

	// 4 and 5. Send over SMTP and Graph.
	subjSMTP := "mailoauth demo over SMTP " + d.nonce
	subjGraph := "mailoauth demo over Graph " + d.nonce
	d.step(4, "Sending a message to "+d.env.User+" over SMTP (STARTTLS, XOAUTH2)")
	if rep, err := d.send(user, "smtp", subjSMTP); err != nil || !rep.OK() {
		return fail(4, "send over SMTP", rep, err)
	}
	d.step(5, "Sending another one through Microsoft Graph (POST /me/sendMail)")
	if rep, err := d.send(user, "graph", subjGraph); err != nil || !rep.OK() {
		return fail(5, "send over Graph", rep, err)
	}

	// 6. Read both back.
	d.step(6, "Reading both back, over IMAP and through Graph")
	if err := d.readBack(user, 6, "read the messages back", []string{"imap", "graph"}, subjSMTP, subjGraph); err != nil {
		return err
	}

	// 7. The same as an app.
	return d.app()
}

// check gets a fresh token for proto and runs mailclient's check, showing
// the report.
func (d *runner) check(a *account.Account, proto string, recent int) (*mailclient.Report, error) {
	opts, err := d.mailOptions(a)
	if err != nil {
		return nil, err
	}
	opts.Recent = recent
	res := proto
	if proto == "pop3" {
		res = account.ResourcePOP
	}
	tok, err := a.Token(d.ctx, res)
	if err != nil {
		return nil, fmt.Errorf("get a %s token: %w", proto, err)
	}
	opts.Token = tok.AccessToken
	var rep *mailclient.Report
	if proto == "graph" {
		rep, err = mailclient.CheckGraph(d.ctx, d.graph(a, tok), d.mailbox(a), opts)
	} else {
		var srv mailclient.Server
		if srv, err = mailclient.ParseURL(d.serverURL(a, proto)); err != nil {
			return nil, err
		}
		rep, err = mailclient.Check(d.ctx, srv, opts)
	}
	d.show(rep)
	return rep, err
}

func (d *runner) send(a *account.Account, via, subject string) (*mailclient.Report, error) {
	opts, err := d.mailOptions(a)
	if err != nil {
		return nil, err
	}
	tok, err := a.Token(d.ctx, via)
	if err != nil {
		return nil, fmt.Errorf("get a %s token: %w", via, err)
	}
	opts.Token = tok.AccessToken
	msg := &mailclient.Message{To: []string{d.env.User}, Subject: subject,
		Body: strings.NewReader("Sent by `mailoauth demo` through the " + via + " path.\n")}
	var rep *mailclient.Report
	if via == "graph" {
		rep, err = mailclient.SendGraph(d.ctx, d.graph(a, tok), d.mailbox(a), opts, msg)
	} else {
		var srv mailclient.Server
		if srv, err = mailclient.ParseURL(d.serverURL(a, via)); err != nil {
			return nil, err
		}
		rep, err = mailclient.Send(d.ctx, srv, opts, msg)
	}
	d.show(rep)
	return rep, err
}

// readBack lists the newest messages over each protocol of vias and
// checks every subject is there.
func (d *runner) readBack(a *account.Account, n int, title string, vias []string, subjects ...string) error {
	for _, via := range vias {
		rep, err := d.check(a, via, 10)
		if err != nil || !rep.OK() {
			return fail(n, title, rep, err)
		}
		for _, want := range subjects {
			if !slices.ContainsFunc(rep.Messages, func(m mailclient.Summary) bool { return m.Subject == want }) {
				return fail(n, title, nil, fmt.Errorf("%q is not among the newest messages listed over %s", want, via))
			}
			d.p("      found %q over %s", want, via)
		}
	}
	return nil
}

// app is step 7: client credentials with the app's certificate, then the
// same mail round trip on the user's mailbox, which the app may open
// because the scenario gave its Exchange service principal FullAccess.
func (d *runner) app() error {
	const title = "the same as an app (client credentials + certificate)"
	d.step(7, "Doing the same as an app: client credentials with a certificate (as `mailoauth login demo-app`)")
	app, err := d.m.Account(AppAccount)
	if err != nil {
		return fail(7, title, nil, err)
	}
	res, err := app.Login(d.ctx, account.LoginUI{})
	if err != nil {
		return fail(7, title, nil, err)
	}
	d.p("      ok: the app signed a client assertion with its certificate and got an app token for %s", res.Resource)
	d.p("      (no user, no refresh token; Exchange lets the app open %s because its service principal has FullAccess)", d.env.User)
	if rep, err := d.check(app, "imap", 0); err != nil || !rep.OK() {
		return fail(7, title, rep, err)
	}
	subjSMTP := "mailoauth demo app over SMTP " + d.nonce
	subjGraph := "mailoauth demo app over Graph " + d.nonce
	if rep, err := d.send(app, "smtp", subjSMTP); err != nil || !rep.OK() {
		return fail(7, title, rep, err)
	}
	if rep, err := d.send(app, "graph", subjGraph); err != nil || !rep.OK() {
		return fail(7, title, rep, err)
	}
	return d.readBack(app, 7, title, []string{"pop3", "graph"}, subjSMTP, subjGraph)
}

func (d *runner) mailOptions(a *account.Account) (mailclient.Options, error) {
	tc, err := mailclient.TLSConfig(a.Config().CAFile)
	if err != nil {
		return mailclient.Options{}, err
	}
	return mailclient.Options{User: a.Email(), TLSConfig: tc, Logger: d.log}, nil
}

func (d *runner) serverURL(a *account.Account, proto string) string {
	c := a.Config()
	switch proto {
	case "imap":
		return c.IMAP.URL
	case "pop3":
		return c.POP3.URL
	}
	return c.SMTP.URL
}

func (d *runner) graph(a *account.Account, tok *oauth.Token) *graph.Client {
	c := graph.New(a.HTTPClient(), graph.StaticToken(tok.AccessToken))
	c.BaseURL = d.env.GraphURL()
	return c
}

// mailbox is /me for the user and /users/{email} for the app (Graph
// refuses /me with an app token).
func (d *runner) mailbox(a *account.Account) graph.Mailbox {
	return graph.MailboxFor(a.Email(), a.SignedInAs(), a.AppOnly())
}
