// Package doctor diagnoses a broken account setup and says, in plain words,
// what is wrong and how to fix it. It is what `mailoauth doctor ACCOUNT`
// runs; it knows nothing about cobra.
//
// It checks, in order, each check building on the ones before:
//
//  1. config: the file and the account are valid, secret references
//     resolve, the certificate and ca_file load;
//  2. identity: the identity server answers for the tenant over verified TLS;
//  3. app: the app registration, probed without a user (a device code
//     request and one poll for public clients, a client credentials token
//     for confidential ones);
//  4. tokens: the store opens, the account's state, and a real refresh of
//     each resource the account uses;
//  5. mail: a login to each of the account's mail servers (and Graph).
//
// Offline runs only 1 and 4 without the refresh. No token, secret or
// password is ever put in a Report.
//
//	rep := doctor.Run(ctx, "work", doctor.Options{ConfigFile: path})
//	rep.WriteText(os.Stdout)
//	if rep.Failed() { ... }
package doctor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/tokens"
)

// Status is the outcome of one check.
type Status string

// The outcomes. Skip marks a check that could not run because an earlier
// one failed or --offline was given; it is neither good nor bad.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
	Skip Status = "skip"
)

// The steps of a diagnosis, in the order they run.
const (
	StepConfig   = "config"
	StepIdentity = "identity"
	StepApp      = "app"
	StepTokens   = "tokens"
	StepMail     = "mail"
)

// Finding is one checked fact about the account.
type Finding struct {
	Step   string `json:"step"`
	Status Status `json:"status"`
	// What names the thing checked ("client secret", "IMAP", "tenant").
	What string `json:"what"`
	// Words say what was found, in plain words.
	Words string `json:"words"`
	// Fix says what to do, when Status is not OK.
	Fix string `json:"fix,omitempty"`
	// Error is the underlying error text (never a secret), for bug reports.
	Error string `json:"error,omitempty"`
	// AADSTS is Microsoft's error number when the finding comes from one.
	AADSTS int `json:"aadsts,omitempty"`
	// Relogin marks a failure that only an interactive login fixes.
	Relogin bool `json:"relogin,omitempty"`
}

// Report is the whole diagnosis of one account.
type Report struct {
	Account  string    `json:"account"`
	Offline  bool      `json:"offline,omitempty"`
	Findings []Finding `json:"findings"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Status == Fail {
			return true
		}
	}
	return false
}

// OnlyRelogin reports whether the account fails only because it needs an
// interactive login: `mailoauth login` is then the whole fix.
func (r *Report) OnlyRelogin() bool {
	n := 0
	for _, f := range r.Findings {
		if f.Status == Fail {
			if !f.Relogin {
				return false
			}
			n++
		}
	}
	return n > 0
}

// Failures returns the failed findings.
func (r *Report) Failures() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Status == Fail {
			out = append(out, f)
		}
	}
	return out
}

// WriteText renders one line per finding, `status  what  words`, with a
// `fix:` line under each one that is not ok.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	width := 0
	for _, f := range r.Findings {
		width = max(width, len(f.What))
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", f.Status, width, f.What, f.Words)
		if f.Fix != "" && f.Status != OK {
			fmt.Fprintf(&b, "      fix: %s\n", f.Fix)
		}
	}
	switch {
	case r.OnlyRelogin():
		fmt.Fprintf(&b, "\n%s needs a new sign-in: run mailoauth login %s\n", r.Account, r.Account)
	case r.Failed():
		fmt.Fprintf(&b, "\n%s has %d problem(s); fix the first one first, then run mailoauth doctor %s again\n", r.Account, len(r.Failures()), r.Account)
	default:
		fmt.Fprintf(&b, "\nno problems found with %s\n", r.Account)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Options configure Run.
type Options struct {
	// ConfigFile is the config file to diagnose (absolute path).
	ConfigFile string
	// Offline skips every network check: only the config and the token
	// store's records are looked at.
	Offline bool
	// Account are the options the token store is opened with (key source,
	// logger); the CLI passes the same ones as login and token. Its Source
	// settings are replaced for the refresh check.
	Account account.Options
	// Now is the clock certificate dates and the server's clock are
	// compared with; nil means time.Now.
	Now func() time.Time
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
}

// run is one diagnosis in progress.
type run struct {
	opts Options
	rep  *Report
	log  *slog.Logger

	cfg  *config.Config
	acct *config.Account

	// What the earlier steps learned, to skip checks that cannot work.
	credsBroken    bool // a secret, certificate or ca_file did not load
	identityBroken bool
	appBroken      bool
	// resources the account uses ("imap" for the Exchange/mail token,
	// "graph"), and which of them have a working token.
	resources []string
	tokenOK   map[string]bool
}

func (r *run) now() time.Time {
	if r.opts.Now != nil {
		return r.opts.Now()
	}
	return time.Now()
}

func (r *run) add(f Finding) { r.rep.Findings = append(r.rep.Findings, f) }

func (r *run) ok(step, what, words string) {
	r.add(Finding{Step: step, Status: OK, What: what, Words: words})
}

func (r *run) warn(step, what, words, fix string) {
	r.add(Finding{Step: step, Status: Warn, What: what, Words: words, Fix: fix})
}

func (r *run) fail(step, what, words, fix string, err error) {
	f := Finding{Step: step, Status: Fail, What: what, Words: words, Fix: fix}
	if err != nil {
		f.Error = err.Error()
	}
	r.add(f)
}

func (r *run) skip(step, what, words string) {
	r.add(Finding{Step: step, Status: Skip, What: what, Words: words})
}

// Run diagnoses the account called name. It never returns nil; every
// problem is a finding, so the report is complete even when the config
// cannot be read.
func Run(ctx context.Context, name string, opts Options) *Report {
	r := &run{opts: opts, rep: &Report{Account: name, Offline: opts.Offline}, tokenOK: map[string]bool{}}
	r.log = opts.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if !r.checkConfig(ctx, name) {
		return r.rep
	}
	if opts.Offline {
		r.skip(StepIdentity, "network checks", "skipped (--offline): identity server, app registration, refresh and mail servers are not contacted")
	} else {
		r.checkIdentity(ctx)
	}
	m, storeFinding := r.openStore(ctx)
	storeOK := m != nil
	if !storeOK {
		// The app registration does not depend on the store: probe it
		// with an empty one.
		mem, err := tokens.Open(ctx, "mem:", nil)
		if err == nil {
			ao := opts.Account
			ao.Store = mem
			m, err = account.Open(ctx, r.cfg, ao)
			defer mem.Close()
		}
		if err != nil {
			r.add(storeFinding)
			return r.rep
		}
	}
	defer m.Close()
	a, err := m.Account(name)
	if err != nil { // cannot happen: the config step found it
		r.fail(StepTokens, "account", err.Error(), "", err)
		return r.rep
	}
	if !opts.Offline {
		r.checkApp(ctx, a)
	}
	r.add(storeFinding)
	if !storeOK {
		r.skip(StepTokens, "tokens", "not checked: the token store does not open")
		return r.rep
	}
	loggedIn := r.checkState(ctx, a)
	if opts.Offline {
		return r.rep
	}
	r.checkRefresh(ctx, m, a, loggedIn)
	r.checkMail(ctx, a)
	return r.rep
}
