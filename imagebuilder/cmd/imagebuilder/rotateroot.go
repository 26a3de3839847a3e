package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
)

var rotateFlags struct {
	keys, newKeys, repo string
	threshold           int
	rootExpiry          time.Duration
}

var rotateRootCmd = &cobra.Command{
	Use:   "rotate-root --repo DIR --keys OLD --new-keys NEW [--threshold K]",
	Short: "Replace signing keys: publish the next root, signed by old and new root keys",
	Long: `rotate-root publishes the next version of the repository's root: the trust
anchor that names the keys of every role. Use it to replace keys that are lost,
compromised or due for rotation.

--new-keys is a directory with the replacement keys, as "imagebuilder keygen
--out NEW" writes them; every key file present there replaces that role's key:

  root-1.key ... root-N.key   the root keys (threshold: --threshold, default
                              the current one)
  targets.key                 the release key
  snapshot.key, timestamp.key the manifest server's online keys

Roles with no key file in NEW keep their keys. --keys is the directory with the
current keys: it must hold a threshold of the current root keys, and the keys of
the roles that are not replaced when any role key is.

The new root is signed by the current root keys in --keys and the new root
keys (a threshold of each is required, so gateways accept it), and written as
metadata/N.root.json and metadata/root.json. When a role key changes, targets,
snapshot and timestamp are re-signed under the new root at once. Gateways walk
the root versions one by one on their next checks (up to 32 per check).

Nothing is written unless every check passes. Afterwards: sign releases with
the new keys, give the manifest server the new snapshot and timestamp keys, and
build new cards with --trusted-root REPO/metadata/root.json.`,
	Example: `  imagebuilder keygen --out keys-2027
  imagebuilder rotate-root --repo repo --keys keys --new-keys keys-2027`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		f := rotateFlags
		if f.keys == "" || f.newKeys == "" || f.repo == "" {
			return usageErrorf("rotate-root: --repo, --keys and --new-keys are required")
		}
		if filepath.Clean(f.keys) == filepath.Clean(f.newKeys) {
			return usageErrorf("rotate-root: --keys and --new-keys are the same directory")
		}
		next, err := publish.LoadKeys(f.newKeys)
		if err != nil {
			return fmt.Errorf("new keys: %w", err)
		}
		cur, err := publish.LoadKeys(f.keys)
		if err != nil {
			return fmt.Errorf("current keys: %w", err)
		}
		ch := publish.RootChange{Targets: next.Targets, Snapshot: next.Snapshot, Timestamp: next.Timestamp,
			RootThreshold: f.threshold, Expiry: f.rootExpiry}
		var replaced []string
		if len(next.Root) > 0 {
			ch.RootKeys = next.Root
			replaced = append(replaced, fmt.Sprintf("root (%d keys)", len(next.Root)))
		}
		for _, r := range []struct {
			name string
			key  *publish.Key
		}{{"targets", next.Targets}, {"snapshot", next.Snapshot}, {"timestamp", next.Timestamp}} {
			if r.key != nil {
				replaced = append(replaced, r.name)
			}
		}
		if len(replaced) == 0 && f.threshold == 0 {
			return usageErrorf("rotate-root: %s holds no key files and --threshold is not given: nothing to change", f.newKeys)
		}
		if f.threshold < 0 || len(next.Root) > 0 && f.threshold > len(next.Root) {
			return usageErrorf("rotate-root: --threshold %d with %d new root keys", f.threshold, len(next.Root))
		}
		repo, err := publish.Open(f.repo, f.keys, publish.Options{})
		if err != nil {
			return fmt.Errorf("repository: %w", err)
		}
		signers := append(append([]*publish.Key{}, cur.Root...), next.Root...)
		if err := repo.RotateRoot(ch, signers...); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if len(replaced) == 0 {
			replaced = append(replaced, "none")
		}
		fmt.Fprintf(out, "published the next root in %s (keys replaced: %s)\n", filepath.Join(f.repo, publish.MetadataDir, publish.RootFile), strings.Join(replaced, ", "))
		fmt.Fprintf(out, "next: sign releases with %s, give the manifest server the new online keys, and build new cards with --trusted-root %s\n",
			f.newKeys, filepath.Join(f.repo, publish.MetadataDir, publish.RootFile))
		return nil
	},
}

func init() {
	f := rotateRootCmd.Flags()
	f.StringVar(&rotateFlags.repo, "repo", "", "repository directory")
	f.StringVar(&rotateFlags.keys, "keys", "", "directory with the current keys (a threshold of the root keys)")
	f.StringVar(&rotateFlags.newKeys, "new-keys", "", "directory with the replacement keys (as keygen writes them)")
	f.IntVar(&rotateFlags.threshold, "threshold", 0, "root keys needed to sign the next root (0: keep the current threshold)")
	f.DurationVar(&rotateFlags.rootExpiry, "root-expiry", publish.DefaultRootExpiry, "lifetime of the new root")
	rootCmd.AddCommand(rotateRootCmd)
}
