package cli

import (
	"encoding/json"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/doctor"
)

// newDoctorCmd is `mailoauth doctor ACCOUNT`: the whole setup checked in
// order, each problem in plain words with its fix.
func newDoctorCmd(g *Globals) *cobra.Command {
	var offline bool
	cmd := &cobra.Command{
		Use:   "doctor ACCOUNT [--offline]",
		Short: "Diagnose an account's setup and say, in plain words, what to fix",
		Long: "doctor checks, in order: the config (account, secret references, certificate, ca_file, flow),\n" +
			"the identity server (tenant, TLS), the app registration (probed without a user: a device code\n" +
			"request and one poll, or an app token), the token store and a real refresh, and a login to each\n" +
			"mail server (IMAP, POP3, SMTP, Graph). Each check prints one line, ok, warn or FAIL, with a fix\n" +
			"under every problem. It never prints a token or a secret.\n\n" +
			"--offline checks only the config and the token store, without any network.\n\n" +
			"Exit status: 0 when nothing failed, 4 when only a login is needed, 1 otherwise.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := g.ConfigFile()
			if err != nil {
				return err
			}
			opts := account.Options{Logger: g.Logger}
			if g.Verbose == 0 {
				// Refresh failures are reported as findings; once is enough.
				opts.Source.Logger = slog.New(slog.DiscardHandler)
			}
			rep := doctor.Run(cmd.Context(), args[0], doctor.Options{ConfigFile: path, Offline: offline, Account: opts, Logger: g.Logger})
			if err := cmd.Context().Err(); err != nil {
				return err // interrupted: the findings would only say so
			}
			if g.JSON {
				out := struct {
					*doctor.Report
					OK bool `json:"ok"`
				}{rep, !rep.Failed()}
				enc := json.NewEncoder(g.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else if err := rep.WriteText(g.Out); err != nil {
				return err
			}
			switch {
			case rep.OnlyRelogin():
				return &SilentError{Code: ExitRelogin}
			case rep.Failed():
				return &SilentError{Code: ExitError}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&offline, "offline", false, "check only the config and the token store (no network)")
	return cmd
}
