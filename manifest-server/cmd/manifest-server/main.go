// Command manifest-server serves an update repository to gateways and
// keeps track of them: `serve` hosts the repository directory and takes
// device status reports into an embedded database, `devices` lists what
// the database knows. Each subcommand registers itself on rootCmd from its
// own file.
package main

import (
	"fmt"
	"os"

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
engine has them) and signed into the repository.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "manifest-server:", err)
		os.Exit(1)
	}
}
