// Package demo runs mailoauth end to end against the offline emulator: the
// identity platform plus the Exchange-like IMAP/POP3/SMTP and Graph servers,
// all on 127.0.0.1, with a throwaway config and token store in a temporary
// folder. It is what `mailoauth demo` (the README's first command) runs, and
// the CLI tests build their accounts on the same Env.
//
//	env, err := demo.StartEnv(demo.EnvOptions{})
//	defer env.Close()
//	cfg := env.Config // accounts "demo" (device code) and "demo-app" (client credentials + certificate)
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// Account names in the config an Env writes.
const (
	UserAccount = "demo"     // the demo user, device code flow, public app
	AppAccount  = "demo-app" // the confidential app, client credentials with its certificate
)

// EnvOptions configure StartEnv.
type EnvOptions struct {
	// Dir holds the CA, the app certificate, the config and the token
	// store; "" makes a temporary folder that Close removes.
	Dir string
	// Logger receives the emulator's logs; nil discards them.
	Logger *slog.Logger
}

// Env is a running emulator (identity + Exchange + Graph) with a config
// file whose accounts point at it.
type Env struct {
	// Dir holds every file below (removed by Close when StartEnv made it).
	Dir string
	// ConfigFile is the written config, for `mailoauth --config`.
	ConfigFile string
	// CAFile is the emulator's CA (PEM), the accounts' ca_file.
	CAFile string
	// AppCertFile holds the confidential app's certificate and private key.
	AppCertFile string
	// Config is ConfigFile loaded by the config package.
	Config *config.Config

	// Emulator is the identity platform; Exchange its mail and Graph servers.
	Emulator *emulator.Server
	Exchange *exchange.Server
	// Demo are the scenario's tenant, apps and users.
	Demo emulator.DemoValues
	// User is the demo user's address (the mailbox of both accounts).
	User string

	removeDir bool
}

// StartEnv starts the emulator with its built-in scenario and the Exchange
// and Graph servers on free loopback ports, writes the CA, the app's
// certificate and a config file with the accounts UserAccount and
// AppAccount, and loads that config.
func StartEnv(opts EnvOptions) (env *Env, err error) {
	env = &Env{Dir: opts.Dir}
	if env.Dir == "" {
		d, err := os.MkdirTemp("", "mailoauth-demo-")
		if err != nil {
			return nil, fmt.Errorf("demo folder: %w", err)
		}
		env.Dir, env.removeDir = d, true
	} else if err := os.MkdirAll(env.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo folder: %w", err)
	}
	defer func() {
		if err != nil {
			_ = env.Close()
			env = nil
		}
	}()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	env.Emulator, err = emulator.Start(emulator.ServerOptions{Options: emulator.Options{Logger: log}})
	if err != nil {
		return env, fmt.Errorf("start the emulator: %w", err)
	}
	// A one-second device poll interval keeps the demo fast; Microsoft
	// says 5 s, and the client honours whatever the server says.
	if err := env.Emulator.UpdateSettings(func(s *emulator.Settings) { s.DeviceCodeInterval = 1 }); err != nil {
		return env, fmt.Errorf("emulator settings: %w", err)
	}
	env.Exchange, err = exchange.Start(env.Emulator, exchange.Options{Logger: log})
	if err != nil {
		return env, fmt.Errorf("start the Exchange servers: %w", err)
	}
	env.Demo = env.Emulator.Demo()
	if len(env.Demo.Users) == 0 {
		return env, errors.New("the emulator scenario names no demo user")
	}
	env.User = env.Demo.Users[0]

	env.CAFile = filepath.Join(env.Dir, "ca.pem")
	if err := os.WriteFile(env.CAFile, env.Emulator.CAPEM(), 0o644); err != nil {
		return env, fmt.Errorf("write the CA: %w", err)
	}
	certPEM, keyPEM, err := env.Emulator.AppCertificate(env.Demo.ConfidentialID)
	if err != nil {
		return env, fmt.Errorf("app certificate: %w", err)
	}
	env.AppCertFile = filepath.Join(env.Dir, "app.pem")
	if err := os.WriteFile(env.AppCertFile, append(certPEM, keyPEM...), 0o600); err != nil {
		return env, fmt.Errorf("write the app certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(env.Dir, "state"), 0o700); err != nil {
		return env, fmt.Errorf("state folder: %w", err)
	}
	// The store's key goes in a key file beside it, made here, so neither
	// the demo nor a CLI run on this config ever touches the OS keyring.
	key := make([]byte, 32)
	rand.Read(key)
	// O_EXCL: a --dir kept from an earlier run keeps its key and store.
	kf, err := os.OpenFile(filepath.Join(env.Dir, "state", "tokens.db.key"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_, err = kf.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := kf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return env, fmt.Errorf("write the store key: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return env, fmt.Errorf("write the store key: %w", err)
	}
	env.ConfigFile = filepath.Join(env.Dir, "config.toml")
	if err := os.WriteFile(env.ConfigFile, []byte(env.configTOML()), 0o600); err != nil {
		return env, fmt.Errorf("write the config: %w", err)
	}
	env.Config, err = config.Load(env.ConfigFile)
	if err != nil {
		return env, fmt.Errorf("load the demo config: %w", err)
	}
	return env, nil
}

// Open opens the accounts of the demo config (its store, keyed by the key
// file StartEnv wrote).
func (env *Env) Open(ctx context.Context, log *slog.Logger) (*account.Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return account.Open(ctx, env.Config, account.Options{Logger: log, StoreOptions: &tokens.Options{NoKeyring: true, Logger: log}})
}

// GraphURL is the Graph base URL with its version, for graph.Client.
func (env *Env) GraphURL() string { return env.Exchange.GraphURL }

// configTOML is the demo config: both accounts name every server of the
// emulator explicitly and trust its CA through ca_file.
func (env *Env) configTOML() string {
	q := strconv.Quote
	graphHost := strings.TrimSuffix(env.Exchange.GraphURL, "/v1.0")
	servers := func() string {
		return "imap = " + q("imaps://"+env.Exchange.IMAPAddr) + "\n" +
			"pop3 = " + q("pop3s://"+env.Exchange.POP3Addr) + "\n" +
			"smtp = " + q("smtp://"+env.Exchange.SMTPAddr) + "\n" +
			"graph = " + q(graphHost) + "\n" +
			"ca_file = " + q(env.CAFile) + "\n"
	}
	return "# Written by mailoauth demo: every URL is the offline emulator on 127.0.0.1.\n" +
		"store = " + q("sqlite:"+filepath.Join(env.Dir, "state", "tokens.db")) + "\n\n" +
		"[accounts." + UserAccount + "]\n" +
		"provider = \"microsoft\"\n" +
		"client_id = " + q(env.Demo.PublicClientID) + "\n" +
		"tenant = " + q(env.Demo.TenantID) + "\n" +
		"authority = " + q(env.Emulator.URL) + "\n" +
		"flow = \"device\"\n" +
		"email = " + q(env.User) + "\n" +
		"scopes = [\"imap\", \"pop\", \"smtp\", \"graph-mail\", \"offline_access\"]\n" +
		servers() + "\n" +
		"[accounts." + AppAccount + "]\n" +
		"provider = \"microsoft\"\n" +
		"client_id = " + q(env.Demo.ConfidentialID) + "\n" +
		"tenant = " + q(env.Demo.TenantID) + "\n" +
		"authority = " + q(env.Emulator.URL) + "\n" +
		"flow = \"client_credentials\"\n" +
		"certificate = " + q(env.AppCertFile) + "\n" +
		"email = " + q(env.User) + "\n" +
		"scopes = [\"imap\", \"pop\", \"smtp\", \"graph-mail\"]\n" +
		servers()
}

// Close stops the servers and removes the temporary folder.
func (env *Env) Close() error {
	var errs []error
	if env.Exchange != nil {
		errs = append(errs, env.Exchange.Close())
	}
	if env.Emulator != nil {
		errs = append(errs, env.Emulator.Close())
	}
	if env.removeDir {
		errs = append(errs, os.RemoveAll(env.Dir))
	}
	return errors.Join(errs...)
}

// SignIn logs an account of the demo config in and stores its tokens, as
// `mailoauth login NAME` would: the user's device code is approved through
// the emulator's admin API; the app uses its certificate.
func (env *Env) SignIn(ctx context.Context, name string) error {
	m, err := env.Open(ctx, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	a, err := m.Account(name)
	if err != nil {
		return err
	}
	var approveErr error
	_, err = a.Login(ctx, account.LoginUI{Device: func(p oauth.DevicePrompt) {
		approveErr = env.Emulator.ApproveDeviceCodeAs(p.UserCode, env.User)
	}})
	return errors.Join(approveErr, err)
}
