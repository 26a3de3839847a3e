package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
)

var keygenFlags struct {
	out                 string
	rootKeys, threshold int
	rootExpiry          time.Duration
}

var keygenCmd = &cobra.Command{
	Use:   "keygen --out DIR [--root-keys N] [--threshold K]",
	Short: "Create the signing keys and the initial trusted root",
	Long: `keygen creates the keys of the update trust model (The Update Framework's
roles, ed25519) in --out, and the initial trusted root that goes onto devices:

  root-1.key ... root-N.key   root keys; a root needs --threshold of them.
                              Keep them offline, apart from each other.
  targets.key                 the release key: signs releases in the build
                              pipeline (imagebuilder release).
  snapshot.key, timestamp.key online keys: the manifest server re-signs the
                              short-lived timestamp (and the snapshot) with them.
  root.json                   root metadata version 1, signed by every root key:
                              the trust anchor. imagebuilder disk installs it
                              on cards; init-repo publishes it.

Key files are JSON in the TUF key format with the private half added
({"keytype":"ed25519","scheme":"ed25519","keyid":..,"keyval":{"public":<hex>,
"private":<hex seed>}}), mode 0600. Existing files are never overwritten.

Next: imagebuilder init-repo --keys DIR --repo REPO.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		if keygenFlags.out == "" {
			return usageErrorf("keygen: --out is required")
		}
		err := publish.Keygen(keygenFlags.out, publish.KeygenOptions{
			RootKeys:      keygenFlags.rootKeys,
			RootThreshold: keygenFlags.threshold,
			RootExpiry:    keygenFlags.rootExpiry,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "keys and %s written to %s\n", publish.RootFile, keygenFlags.out)
		return nil
	},
}

var initRepoFlags struct {
	keys, repo                                     string
	targetsExpiry, snapshotExpiry, timestampExpiry time.Duration
}

var initRepoCmd = &cobra.Command{
	Use:   "init-repo --keys DIR --repo DIR",
	Short: "Create an empty signed release repository",
	Long: `init-repo creates a release repository in --repo from the keys and root.json
that keygen wrote to --keys. The repository is a directory of plain files that
any static web server (nginx, S3 + CDN) or manifest-server can serve:

  metadata/1.root.json      the root (later versions N.root.json on rotation)
  metadata/root.json        a copy of the newest root
  metadata/N.targets.json   signed list of releases and payloads (release key)
  metadata/N.snapshot.json  signed versions of the targets metadata
  metadata/timestamp.json   short-lived, re-signed by the manifest server
  targets/...               payloads under <sha256>.<name> names

Only root.json and the targets, snapshot and timestamp keys are read; root keys
need not be present. Releases are added by imagebuilder release.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		if initRepoFlags.keys == "" || initRepoFlags.repo == "" {
			return usageErrorf("init-repo: --keys and --repo are required")
		}
		_, err := publish.Init(initRepoFlags.repo, initRepoFlags.keys, publish.Options{
			TargetsExpiry:   initRepoFlags.targetsExpiry,
			SnapshotExpiry:  initRepoFlags.snapshotExpiry,
			TimestampExpiry: initRepoFlags.timestampExpiry,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "repository created in %s (serve it, then publish releases)\n", filepath.Clean(initRepoFlags.repo))
		return nil
	},
}

func init() {
	f := keygenCmd.Flags()
	f.StringVar(&keygenFlags.out, "out", "", "directory for the keys and root.json (created 0700)")
	f.IntVar(&keygenFlags.rootKeys, "root-keys", 3, "number of root keys")
	f.IntVar(&keygenFlags.threshold, "threshold", 2, "root keys needed to sign a root")
	f.DurationVar(&keygenFlags.rootExpiry, "root-expiry", publish.DefaultRootExpiry, "lifetime of the initial root")
	rootCmd.AddCommand(keygenCmd)

	f = initRepoCmd.Flags()
	f.StringVar(&initRepoFlags.keys, "keys", "", "keys directory written by keygen")
	f.StringVar(&initRepoFlags.repo, "repo", "", "repository directory to create")
	f.DurationVar(&initRepoFlags.targetsExpiry, "targets-expiry", publish.DefaultTargetsExpiry, "lifetime of targets metadata")
	f.DurationVar(&initRepoFlags.snapshotExpiry, "snapshot-expiry", publish.DefaultSnapshotExpiry, "lifetime of snapshot metadata")
	f.DurationVar(&initRepoFlags.timestampExpiry, "timestamp-expiry", publish.DefaultTimestampExpiry, "lifetime of timestamp metadata")
	rootCmd.AddCommand(initRepoCmd)
}
