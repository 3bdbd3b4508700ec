package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/tokens"
)

// TokenOptions are the inputs of `mailoauth token`.
type TokenOptions struct {
	G        *Globals
	Account  string
	Resource string // imap, pop, smtp, ews, graph
	SASL     string // "", xoauth2, oauthbearer
}

func newTokenCmd(g *Globals, runF func(context.Context, *TokenOptions) error) *cobra.Command {
	o := &TokenOptions{G: g}
	cmd := &cobra.Command{
		Use:   "token ACCOUNT",
		Short: "Print a valid access token (refreshing it if needed)",
		Long: "token prints a valid access token for ACCOUNT on stdout, refreshing it first when it is\n" +
			"due. It never prompts: when the account needs an interactive login it exits with code 4\n" +
			"and prints the command to run on stderr. --sasl prints the base64 SASL initial response\n" +
			"(user = the account's email) for clients that take one ready-made.",
		Example: "  mailoauth token work\n  mailoauth token work --resource graph --json\n  mailoauth token work --sasl xoauth2",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Account = args[0]
			switch o.Resource {
			case "imap", "pop", "pop3", "smtp", "ews", "graph":
			default:
				return &FlagError{Err: fmt.Errorf("--resource %q: use imap, pop, smtp, ews or graph", o.Resource)}
			}
			switch o.SASL {
			case "", "xoauth2", "oauthbearer":
			default:
				return &FlagError{Err: fmt.Errorf("--sasl %q: use xoauth2 or oauthbearer", o.SASL)}
			}
			if runF == nil {
				runF = runToken
			}
			return runF(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Resource, "resource", "imap", "what the token is for: imap, pop, smtp, ews or graph")
	f.StringVar(&o.SASL, "sasl", "", "print the SASL initial response instead: xoauth2 or oauthbearer")
	return cmd
}

// tokenJSON is `token --json`: the token and what it is good for.
type tokenJSON struct {
	Account     string    `json:"account"`
	Resource    string    `json:"resource"`
	AccessToken string    `json:"access_token,omitempty"`
	TokenType   string    `json:"token_type,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	Scopes      []string  `json:"scopes,omitempty"`
	SASL        string    `json:"sasl,omitempty"`
	User        string    `json:"user,omitempty"`
}

// runToken is on the path of every mail client connection, so it does only
// what the cached case needs: read the config, open the store, read one
// record. Nothing touches the network unless a refresh is due.
func runToken(ctx context.Context, o *TokenOptions) error {
	g := o.G
	// A running `mailoauth serve` answers from memory (serve.go); without
	// one, read the store here.
	if done, err := runTokenViaDaemon(ctx, o); done {
		return err
	}
	m, a, err := openAccount(ctx, g, o.Account)
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := a.Token(ctx, o.Resource)
	if err != nil {
		return reportError(g, err)
	}
	return printToken(g, o, tok, a.Email())
}

// printToken writes what `mailoauth token` prints, whether the token came
// from the daemon or the store: the access token, or with --sasl the SASL
// initial response for user, as a line or with --json as an object.
func printToken(g *Globals, o *TokenOptions, tok *oauth.Token, user string) error {
	out := tokenJSON{Account: o.Account, Resource: o.Resource, TokenType: tok.TokenType, Expiry: tok.Expiry, Scopes: tok.Scope}
	line := tok.AccessToken
	if o.SASL != "" {
		if user == "" {
			return fmt.Errorf("account %s has no email: set email in its config table (the SASL user name)", o.Account)
		}
		if o.SASL == "xoauth2" {
			line = sasl.XOAUTH2InitialResponse(user, tok.AccessToken)
		} else {
			line = sasl.OAuthBearerInitialResponse(sasl.Options{User: user, Token: tok.AccessToken})
		}
		out.SASL, out.User = line, user
	} else {
		out.AccessToken = tok.AccessToken
	}
	if g.JSON {
		return writeJSON(g.Out, out)
	}
	_, err := io.WriteString(g.Out, line+"\n")
	return err
}

// openAccount opens the token store and the account called name in it,
// for the commands that act on one account; an unknown name is a
// *ConfigError. The caller closes the returned manager.
func openAccount(ctx context.Context, g *Globals, name string) (*account.Manager, *account.Account, error) {
	m, err := openAccounts(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	a, err := m.Account(name)
	if err != nil {
		m.Close()
		return nil, nil, &ConfigError{Err: err}
	}
	return m, a, nil
}

// openAccounts loads the config and opens its token store.
func openAccounts(ctx context.Context, g *Globals) (*account.Manager, error) {
	cfg, err := g.Config()
	if err != nil {
		return nil, err
	}
	opts := account.Options{Logger: g.Logger}
	if g.Verbose == 0 {
		// The refresh engine logs a refused refresh as a warning; the
		// command reports the same error itself, once is enough.
		opts.Source.Logger = slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	m, err := account.Open(ctx, cfg, opts)
	if err != nil {
		return nil, storeKeyHint(cfg, err)
	}
	return m, nil
}

// storeKeyHint adds to a store key error the config key that fixes it: the
// tokens package knows key sources, not config files.
func storeKeyHint(cfg *config.Config, err error) error {
	switch {
	case errors.Is(err, tokens.ErrPassphraseRequired):
		return fmt.Errorf("%w (set store_passphrase in %s, e.g. store_passphrase = \"cmd:pass show mailoauth-store\")", err, cfg.File)
	case errors.Is(err, tokens.ErrWrongKey) && cfg.StorePassphrase.IsSet():
		return fmt.Errorf("%w (store_passphrase is %s)", err, cfg.StorePassphrase)
	}
	return err
}

// errorJSON is every field of a failure, for --json.
type errorJSON struct {
	Message       string `json:"message"`
	Code          string `json:"code,omitempty"`
	AADSTS        []int  `json:"aadsts,omitempty"`
	Description   string `json:"description,omitempty"`
	SubError      string `json:"suberror,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	TraceID       string `json:"trace_id,omitempty"`
	Timestamp     string `json:"timestamp,omitempty"`
	URI           string `json:"uri,omitempty"`
	HTTPStatus    int    `json:"http_status,omitempty"`
	Endpoint      string `json:"endpoint,omitempty"`
	Hint          string `json:"hint,omitempty"`
	Claims        string `json:"claims,omitempty"`              // a claims challenge (Conditional Access) to send back
	RetryAfter    int    `json:"retry_after_seconds,omitempty"` // the server's Retry-After
	// ReloginRequired and Command: run Command to fix it.
	ReloginRequired bool   `json:"relogin_required,omitempty"`
	Command         string `json:"command,omitempty"`
}

// reportError explains a failure of an account operation on stderr (the
// message, then the typed error's hint and the command to run) and, with
// --json, every field on stdout; it returns the SilentError carrying the
// exit code: ExitRelogin when only a login helps, ExitCancel on Ctrl-C.
func reportError(g *Globals, err error) error {
	ej := errorJSON{Message: err.Error()}
	var oe *oauth.Error
	if errors.As(err, &oe) {
		ej.Code, ej.AADSTS, ej.Description, ej.SubError = oe.Code, oe.AADSTS, oe.Description, oe.SubError
		ej.CorrelationID, ej.TraceID, ej.Timestamp, ej.URI = oe.CorrelationID, oe.TraceID, oe.Timestamp, oe.URI
		ej.HTTPStatus, ej.Endpoint, ej.Hint = oe.HTTPStatus, oe.Endpoint, oe.Hint
		ej.Claims, ej.RetryAfter = oe.Claims, int(oe.RetryAfter/time.Second)
	}
	code := ExitCode(err)
	if errors.Is(err, tokens.ErrReloginRequired) {
		code = ExitRelogin
		ej.ReloginRequired = true
		var re *tokens.ReloginError
		if errors.As(err, &re) {
			ej.Command = re.Command
		}
	}
	fmt.Fprintf(g.ErrOut, "mailoauth: %v\n", err)
	if ej.Hint != "" {
		fmt.Fprintf(g.ErrOut, "Hint: %s\n", ej.Hint)
	}
	if ej.Command != "" && !strings.Contains(err.Error(), ej.Command) {
		fmt.Fprintf(g.ErrOut, "Run: %s\n", ej.Command)
	}
	if g.JSON {
		if werr := writeJSON(g.Out, map[string]any{"error": ej}); werr != nil {
			return werr
		}
	}
	return &SilentError{Code: code}
}
