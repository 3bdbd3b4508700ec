package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// usageError turns cobra's untyped complaints about the command line
// (unknown command, wrong number of arguments) into a *FlagError, so they
// exit with ExitUsage like bad flags do. Cobra has no error types for these,
// so its messages are matched by prefix.
func usageError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*FlagError); ok {
		return err
	}
	msg := err.Error()
	for _, p := range []string{"unknown command ", "accepts ", "requires at least ", "requires at most ", "accepts between ", "invalid argument "} {
		if strings.HasPrefix(msg, p) {
			return &FlagError{Err: err}
		}
	}
	return err
}

// usageArgs wraps a cobra argument validator so its error is a usage error.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &FlagError{Err: err}
		}
		return nil
	}
}
