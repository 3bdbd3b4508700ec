package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
)

// emulatorOptions are the flags of `mailoauth emulator` (a fixed contract:
// --listen, --ca-out, --scenario, --http).
type emulatorOptions struct {
	Listen       string
	CAOut        string
	Scenario     string
	HTTP         bool
	WriteAppCert string
	// Listen addresses of the Exchange-like mail servers and Graph; ""
	// picks a free port (printed with the other services).
	IMAPListen, POP3Listen, SMTPListen, GraphListen string
}

func newEmulatorCmd(g *Globals) *cobra.Command {
	o := &emulatorOptions{}
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run an offline Microsoft identity platform emulator on loopback",
		Long: "emulator serves a Microsoft identity platform look-alike (discovery, keys, authorize, token,\n" +
			"devicecode, admin consent) on 127.0.0.1 until interrupted, and Exchange Online look-alikes:\n" +
			"IMAP (implicit TLS), POP3 (implicit TLS), SMTP submission (STARTTLS) and Graph mail (HTTPS),\n" +
			"which accept only tokens it issued. It prints one line per service with its URL.\n" +
			"TLS uses a CA generated at start; --ca-out writes it so clients can trust it.\n" +
			"See internal/emulator/README.md for the scenario file and the admin API.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runEmulator(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "loopback address to listen on (port 0 = any free port)")
	f.StringVar(&o.CAOut, "ca-out", "", "write the emulator's CA certificate (PEM) to this file")
	f.StringVar(&o.Scenario, "scenario", "", "scenario file (TOML); default: the built-in demo scenario")
	f.BoolVar(&o.HTTP, "http", false, "serve the identity endpoints over plain HTTP instead of HTTPS (the mail and Graph servers keep TLS)")
	f.StringVar(&o.WriteAppCert, "write-app-cert", "", "write the demo confidential app's certificate and private key (PEM) to this file")
	f.StringVar(&o.IMAPListen, "imap-listen", "", "loopback address of the IMAP server (implicit TLS; default: a free port)")
	f.StringVar(&o.POP3Listen, "pop3-listen", "", "loopback address of the POP3 server (implicit TLS; default: a free port)")
	f.StringVar(&o.SMTPListen, "smtp-listen", "", "loopback address of the SMTP submission server (STARTTLS; default: a free port)")
	f.StringVar(&o.GraphListen, "graph-listen", "", "loopback address of the Graph server (HTTPS; default: a free port)")
	return cmd
}

func runEmulator(cmd *cobra.Command, g *Globals, o *emulatorOptions) error {
	opts := emulator.ServerOptions{Listen: o.Listen, PlainHTTP: o.HTTP}
	opts.Logger = g.Logger
	if o.Scenario != "" {
		sc, err := emulator.LoadScenario(o.Scenario)
		if err != nil {
			return &ConfigError{Err: err}
		}
		opts.Scenario = sc
	}
	srv, err := emulator.Start(opts)
	if errors.Is(err, emulator.ErrScenario) {
		return &ConfigError{Err: err} // a scenario value, named with its file
	}
	if err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	defer srv.Close()
	// The Exchange and Graph servers always use TLS under the emulator's
	// CA, even with --http, so --ca-out writes it in both modes.
	xs, err := exchange.Start(srv, exchange.Options{IMAPAddr: o.IMAPListen, POP3Addr: o.POP3Listen,
		SMTPAddr: o.SMTPListen, GraphAddr: o.GraphListen, Logger: g.Logger})
	if err != nil {
		return fmt.Errorf("start the Exchange servers: %w", err)
	}
	defer xs.Close()
	if o.CAOut != "" {
		if err := os.WriteFile(o.CAOut, srv.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("write CA: %w", err)
		}
	} else {
		// The CA is new on every start and exists nowhere else: without
		// it no client can verify the emulator's certificates.
		fmt.Fprintln(g.ErrOut, "mailoauth: warning: no --ca-out FILE: clients cannot verify the emulator's TLS certificates (the CA is generated at start and written only there)")
	}
	demo := srv.Demo()
	if o.WriteAppCert != "" {
		certPEM, keyPEM, err := srv.AppCertificate(demo.ConfidentialID)
		if err != nil {
			return fmt.Errorf("write app certificate: %w", err)
		}
		if err := os.WriteFile(o.WriteAppCert, append(certPEM, keyPEM...), 0o600); err != nil {
			return fmt.Errorf("write app certificate: %w", err)
		}
	}
	if g.JSON {
		if err := json.NewEncoder(g.Out).Encode(map[string]any{"services": srv.Services(), "demo": demo}); err != nil {
			return err
		}
	} else {
		for _, s := range srv.Services() {
			fmt.Fprintf(g.Out, "%-9s %s\n", s.Name, s.URL)
		}
		fmt.Fprintf(g.ErrOut, "tenant %s (%s), public app %s, confidential app %s\n",
			demo.TenantID, demo.TenantDomain, demo.PublicClientID, demo.ConfidentialID)
		// The scenario's made-up users, with the passwords to type on its
		// sign-in pages (they exist nowhere but in this emulator).
		var users []string
		for i, u := range demo.Users {
			if i < len(demo.Passwords) && demo.Passwords[i] != "" {
				u += " (password " + demo.Passwords[i] + ")"
			}
			users = append(users, u)
		}
		fmt.Fprintf(g.ErrOut, "users: %s\n", strings.Join(users, ", "))
		fmt.Fprintln(g.ErrOut, "admin API under "+srv.URL+"/_emulator/ ; press Ctrl-C to stop")
	}
	<-cmd.Context().Done()
	return nil
}
