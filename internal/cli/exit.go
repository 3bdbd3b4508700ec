package cli

import (
	"context"
	"errors"
)

// Exit codes, documented in the README. Scripts branch on them, so they are a
// fixed contract: add new ones, never renumber.
const (
	ExitOK      = 0 // success
	ExitError   = 1 // any other failure
	ExitUsage   = 2 // bad flags or arguments
	ExitCancel  = 3 // interrupted (Ctrl-C, SIGTERM)
	ExitRelogin = 4 // the account needs an interactive login again
	ExitConfig  = 5 // the config file is missing or wrong
)

// FlagError is a usage mistake: wrong flag, missing argument.
type FlagError struct{ Err error }

// Error is cobra's or the command's message about the command line.
func (e *FlagError) Error() string { return e.Err.Error() }

// Unwrap gives errors.Is/As the underlying error.
func (e *FlagError) Unwrap() error { return e.Err }

// SilentError carries an exit code for a failure the command has already
// explained on stderr.
type SilentError struct{ Code int }

// Error is never printed: Run skips SilentErrors, whose story is already
// on stderr.
func (e *SilentError) Error() string { return "exit status" }

// ExitCoder is implemented by errors that know their exit code (for example
// a config error or a "re-login needed" state from another package).
type ExitCoder interface{ ExitCode() int }

// ExitCode maps an error to the process exit code, in this one place.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var silent *SilentError
	if errors.As(err, &silent) {
		return silent.Code
	}
	var flagErr *FlagError
	if errors.As(err, &flagErr) {
		return ExitUsage
	}
	var coder ExitCoder
	if errors.As(err, &coder) {
		return coder.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		return ExitCancel
	}
	return ExitError
}
