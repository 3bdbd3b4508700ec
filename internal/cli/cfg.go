package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/paths"
)

// configCache holds the result of the one config load of a command run.
type configCache struct {
	loaded bool
	path   string
	cfg    *config.Config
	err    error
}

// ConfigError is a config file that is missing or wrong. It exits with
// ExitConfig.
type ConfigError struct{ Err error }

// Error lists the problems, one "file:line: key: message" per line when
// there are several, so editors can jump to each.
func (e *ConfigError) Error() string {
	var ce *config.Error
	if errors.As(e.Err, &ce) && len(ce.Problems) > 1 {
		// One problem per line, each starting with file:line so editors
		// (vim's quickfix, VS Code's terminal) can jump to it.
		return fmt.Sprintf("%d problems in the config file:\n%s", len(ce.Problems), ce.Error())
	}
	return e.Err.Error()
}

// Unwrap gives errors.Is/As the config package's error.
func (e *ConfigError) Unwrap() error { return e.Err }

// ExitCode implements ExitCoder.
func (e *ConfigError) ExitCode() int { return ExitConfig }

// ConfigFile is the path of the config file this run uses: --config, else
// $MAILOAUTH_CONFIG, else the XDG default.
func (g *Globals) ConfigFile() (string, error) {
	p, err := paths.ConfigFile(g.ConfigPath)
	if err != nil {
		return "", &ConfigError{Err: err}
	}
	return p, nil
}

// Config loads the config file once per run and prints its warnings on
// stderr the first time. Every command that needs the config calls this; a
// failure is a *ConfigError (exit code ExitConfig).
func (g *Globals) Config() (*config.Config, error) {
	if g.cfg.loaded {
		return g.cfg.cfg, g.cfg.err
	}
	g.cfg.loaded = true
	p, err := g.ConfigFile()
	if err != nil {
		g.cfg.err = err
		return nil, err
	}
	g.cfg.path = p
	cfg, err := config.Load(p)
	if err != nil {
		g.cfg.err = &ConfigError{Err: err}
		return nil, g.cfg.err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(g.ErrOut, "mailoauth: warning: %s\n", w)
	}
	g.cfg.cfg = cfg
	return cfg, nil
}

// Account loads the config and returns the account called name. An unknown
// name is a *ConfigError whose message lists the configured accounts.
func (g *Globals) Account(name string) (*config.Account, error) {
	cfg, err := g.Config()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(name) == "" {
		return nil, &FlagError{Err: fmt.Errorf("name an account: %s", strings.Join(cfg.AccountNames(), ", "))}
	}
	a, err := cfg.Account(name)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	return a, nil
}
