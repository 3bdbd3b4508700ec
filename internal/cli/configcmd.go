package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/paths"
)

func newConfigCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the config file and show where mailoauth keeps its files",
		Args:  usageArgs(cobra.NoArgs),
	}
	cmd.AddCommand(newConfigCheckCmd(g, nil), newConfigPathCmd(g, nil))
	return cmd
}

// ConfigCheckOptions are the inputs of `mailoauth config check`.
type ConfigCheckOptions struct {
	Out, ErrOut io.Writer
	JSON        bool
	// ConfigFile and Load are the Globals' methods; tests may replace them.
	ConfigFile func() (string, error)
	Load       func() (*config.Config, error)
}

func newConfigCheckCmd(g *Globals, runF func(*ConfigCheckOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the config file and list its accounts",
		Long: `Validate the config file and list its accounts.

Every problem is reported as FILE:LINE: KEY: MESSAGE; the exit code is 5 when
the file is missing or wrong. Secret references (env:, file:, cmd:, keyring:)
are checked for form only: they are never resolved here.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := &ConfigCheckOptions{Out: g.Out, ErrOut: g.ErrOut, JSON: g.JSON, ConfigFile: g.ConfigFile, Load: g.Config}
			if runF != nil {
				return runF(opts)
			}
			return configCheckRun(opts)
		},
	}
}

// configCheckJSON is the --json output of config check: a stable shape for
// scripts and editors.
type configCheckJSON struct {
	File     string        `json:"file"`
	OK       bool          `json:"ok"`
	Store    string        `json:"store,omitempty"`
	Accounts []accountJSON `json:"accounts"`
	Proxies  []proxyJSON   `json:"proxies"`
	Warnings []problemJSON `json:"warnings"`
	Problems []problemJSON `json:"problems"`
}

type accountJSON struct {
	Name       string   `json:"name"`
	Provider   string   `json:"provider"`
	Flow       string   `json:"flow"`
	Tenant     string   `json:"tenant,omitempty"`
	Cloud      string   `json:"cloud,omitempty"`
	Authority  string   `json:"authority,omitempty"`
	Issuer     string   `json:"issuer,omitempty"`
	ClientID   string   `json:"client_id"`
	Credential string   `json:"credential"` // none, client_secret, certificate
	Email      string   `json:"email,omitempty"`
	Scopes     []string `json:"scopes"`
	IMAP       string   `json:"imap,omitempty"`
	POP3       string   `json:"pop3,omitempty"`
	SMTP       string   `json:"smtp,omitempty"`
	Graph      string   `json:"graph,omitempty"`
	SASL       string   `json:"sasl"`
}

type proxyJSON struct {
	Protocol string   `json:"protocol"`
	Listen   string   `json:"listen"`
	TLS      string   `json:"tls"`
	Accounts []string `json:"accounts"`
	Upstream string   `json:"upstream,omitempty"`
}

type problemJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

func toProblemJSON(ps []config.Problem) []problemJSON {
	out := []problemJSON{}
	for _, p := range ps {
		out = append(out, problemJSON{File: p.File, Line: p.Line, Key: p.Key, Message: p.Msg})
	}
	return out
}

func serverURL(s *config.Server) string {
	if s == nil {
		return ""
	}
	return s.URL
}

func credential(a *config.Account) string {
	switch {
	case a.Certificate != "":
		return "certificate"
	case a.ClientSecret.IsSet():
		return "client_secret"
	}
	return "none"
}

func configCheckRun(opts *ConfigCheckOptions) error {
	file, err := opts.ConfigFile()
	if err != nil {
		return err
	}
	cfg, err := opts.Load()
	if err != nil {
		if opts.JSON {
			out := configCheckJSON{File: file, Accounts: []accountJSON{}, Proxies: []proxyJSON{}, Warnings: []problemJSON{}}
			var ce *config.Error
			if errors.As(err, &ce) {
				out.Problems = toProblemJSON(ce.Problems)
			} else {
				out.Problems = []problemJSON{{File: file, Message: err.Error()}}
			}
			if jerr := writeJSON(opts.Out, out); jerr != nil {
				return jerr
			}
		}
		return err
	}
	names := cfg.AccountNames()
	if opts.JSON {
		out := configCheckJSON{File: cfg.File, OK: true, Store: redactStore(cfg.Store), Accounts: []accountJSON{}, Proxies: []proxyJSON{},
			Warnings: toProblemJSON(cfg.Warnings), Problems: []problemJSON{}}
		for _, n := range names {
			a := cfg.Accounts[n]
			out.Accounts = append(out.Accounts, accountJSON{
				Name: n, Provider: string(a.Provider), Flow: string(a.Flow), Tenant: a.Tenant, Cloud: a.Cloud,
				Authority: a.Authority, Issuer: a.Issuer, ClientID: a.ClientID, Credential: credential(a), Email: a.Email,
				Scopes: a.Scopes, IMAP: serverURL(a.IMAP), POP3: serverURL(a.POP3), SMTP: serverURL(a.SMTP), Graph: a.Graph, SASL: a.SASL,
			})
		}
		for _, proto := range []string{"imap", "pop3", "smtp"} {
			if p, ok := cfg.Proxies[proto]; ok {
				out.Proxies = append(out.Proxies, proxyJSON{Protocol: proto, Listen: p.Listen, TLS: p.TLS, Accounts: p.Accounts, Upstream: serverURL(p.Upstream)})
			}
		}
		return writeJSON(opts.Out, out)
	}
	fmt.Fprintf(opts.Out, "%s: ok, %d account%s\n", cfg.File, len(names), plural(len(names)))
	if len(names) > 0 {
		tw := tabwriter.NewWriter(opts.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tPROVIDER\tFLOW\tTENANT\tEMAIL")
		for _, n := range names {
			a := cfg.Accounts[n]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, a.Provider, a.Flow, dash(a.Tenant), dash(a.Email))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		if p, ok := cfg.Proxies[proto]; ok {
			fmt.Fprintf(opts.Out, "proxy %s on %s (tls %s): %s\n", proto, p.Listen, p.TLS, strings.Join(p.Accounts, ", "))
		}
	}
	return nil
}

// redactStore hides a password in a PostgreSQL store URL.
func redactStore(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if user, _, ok := strings.Cut(rest[:at], ":"); ok {
				return s[:i+3] + user + ":xxxxx" + rest[at:]
			}
		}
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ConfigPathOptions are the inputs of `mailoauth config path`.
type ConfigPathOptions struct {
	Out        io.Writer
	JSON       bool
	ConfigFile func() (string, error)
}

func newConfigPathCmd(g *Globals, runF func(*ConfigPathOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "path",
		Short: "Print the path of the config file (--json: also the state and runtime directories)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := &ConfigPathOptions{Out: g.Out, JSON: g.JSON, ConfigFile: g.ConfigFile}
			if runF != nil {
				return runF(opts)
			}
			return configPathRun(opts)
		},
	}
}

func configPathRun(opts *ConfigPathOptions) error {
	file, err := opts.ConfigFile()
	if err != nil {
		return err
	}
	if !opts.JSON {
		_, err := fmt.Fprintln(opts.Out, file)
		return err
	}
	state, err := paths.StateDir()
	if err != nil {
		return err
	}
	runtime, err := paths.RuntimeDir()
	if err != nil {
		return err
	}
	_, statErr := os.Stat(file)
	return writeJSON(opts.Out, map[string]any{"config": file, "exists": statErr == nil, "state_dir": state, "runtime_dir": runtime})
}
