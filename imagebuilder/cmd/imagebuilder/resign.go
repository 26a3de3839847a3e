package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
)

var resignFlags struct {
	keys, repo    string
	targetsExpiry time.Duration
	within        time.Duration
}

var resignCmd = &cobra.Command{
	Use:   "resign --keys DIR --repo DIR [--within D]",
	Short: "Renew the signed list of releases before it expires",
	Long: `resign signs the repository's targets metadata again, listing the same
releases, with a new expiry (--targets-expiry, default 2160h: 90 days), then a new
snapshot and timestamp.

Gateways trust the list of releases only until targets.json expires. Each
release renews it; a repository that publishes nothing for longer than
--targets-expiry must be re-signed before then, or every gateway refuses the
repository ("targets.json expired") and updates stop. The manifest server
renews the timestamp and snapshot on its own, but it holds no targets key.

With --within D, resign does nothing unless targets.json expires within D:
suitable for a daily timer on the machine that holds the targets key.

Needs the targets, snapshot and timestamp keys (as keygen writes them).`,
	Example: `  imagebuilder resign --keys keys --repo repo
  imagebuilder resign --keys keys --repo repo --within 720h   # 30 days`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		f := resignFlags
		if f.keys == "" || f.repo == "" {
			return usageErrorf("resign: --keys and --repo are required")
		}
		r, err := publish.Open(f.repo, f.keys, publish.Options{TargetsExpiry: f.targetsExpiry})
		if err != nil {
			return fmt.Errorf("repository: %w", err)
		}
		was, _, _, err := r.Expires()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if f.within > 0 && time.Until(was) > f.within {
			fmt.Fprintf(out, "targets.json expires %s, not within %v: nothing to do\n", was.Format(time.RFC3339), f.within)
			return nil
		}
		if err := r.ResignTargets(); err != nil {
			return err
		}
		targets, snapshot, timestamp, err := r.Expires()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "re-signed: targets.json expires %s (was %s), snapshot %s, timestamp %s\n",
			targets.Format(time.RFC3339), was.Format(time.RFC3339), snapshot.Format(time.RFC3339), timestamp.Format(time.RFC3339))
		return nil
	},
}

func init() {
	f := resignCmd.Flags()
	f.StringVar(&resignFlags.keys, "keys", "", "keys directory with targets.key, snapshot.key and timestamp.key")
	f.StringVar(&resignFlags.repo, "repo", "", "repository directory")
	f.DurationVar(&resignFlags.targetsExpiry, "targets-expiry", publish.DefaultTargetsExpiry, "lifetime of the renewed targets metadata")
	f.DurationVar(&resignFlags.within, "within", 0, "only re-sign when targets.json expires within this long (0: always)")
	rootCmd.AddCommand(resignCmd)
}
