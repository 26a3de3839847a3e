// Command manifest-server serves an update repository to gateways and
// keeps track of them: `serve` hosts the repository directory and takes
// device status reports into an embedded database, `devices` lists what
// the database knows. Each subcommand registers itself on rootCmd from its
// own file.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:   "manifest-server",
	Short: "Host the update repository and track the gateways",
	Long: `manifest-server hosts the signed update repository that imagebuilder
publishes (a directory of plain files: metadata/ and targets/) and records the
status reports the gateways send.

The repository works from any static web server; "manifest-server serve" is one
with extras: it re-signs the short-lived timestamp metadata before it expires,
accepts signed device reports into an SQLite database, which
"manifest-server devices" lists, and hosts an OCI image registry under /v2/.
"manifest-server create-update" publishes a container-only release: its images
pinned by digest (pushed to the registry first when only the local Docker
engine has them) and signed into the repository.

Exit status: 0 on success, 1 on failure, 2 on a usage error.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	rootCmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
}

// usageError marks an error in how the command was called (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// usageErrorf reports a bad invocation.
func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps the result of a command to the exit status.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "required flag"):
		return 2
	}
	return 1
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "manifest-server:", err)
		os.Exit(exitCode(err))
	}
}
