package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/updater/release"
)

var relFlags struct {
	repo, keys, rootfs, boot, version, channel, compatible string
	counter                                                uint64
	rootSize, bootSize                                     string
	httpChecks, tcpChecks, cmdChecks, unitChecks           []string
	checksFile                                             string
	deadline                                               time.Duration
	quiet                                                  bool
	composeFile, strategy, registryURL, dockerHost         string
	images, env                                            []string
	embedImages, noEngine                                  bool
	deltaFrom                                              int
	deltaCache                                             string
}

var releaseCmd = &cobra.Command{
	Use:   "release --repo DIR --keys DIR --rootfs PATH --boot DIR --version V --counter N [flags]",
	Short: "Build a release's slot images and publish them, signed, into a repository",
	Long: `release builds the images of one release and publishes it.

It builds the root file system image (ext4, no journal, --root-size) and the
boot partition image (FAT32, --boot-size) with ota-slot.json recording the
release, compresses each as an xz payload (independent 8 MiB blocks), writes
the release manifest (version, counter, channel, board id, the sha256 and size
of each image and payload, health checks) and signs it into the repository
with the targets key; the snapshot and timestamp are signed too when their
keys are in --keys. Payload files are written first and timestamp.json last,
so a device reading the repository meanwhile never sees half a release.

cmdline.txt's root= is set to the placeholder PARTUUID=00000000-00: the
device rewrites it with its own card's PARTUUID of the slot it installs to.

Health checks run on the trial boot; all must pass within --health-deadline:
  --health-http URL     GET must answer 200
  --health-tcp H:P      a TCP connect must succeed
  --health-cmd "ARGV"   the command (split on blanks, no shell) must exit 0
  --health-unit UNIT    the systemd unit must be active
  --health-checks FILE  a JSON list of checks as in the manifest

The container set (optional) is started on the trial boot and confirmed or
rolled back together with the OS:
  --compose FILE        services from a compose file (the keys and x-ota-*
                        extensions package manifest-server/compose accepts;
                        --env KEY=VALUE feeds its ${KEY})
  --docker-image REF    one service per image (repeatable)
Every image is pinned by digest before signing: an image only in the local
Docker engine (--docker-host) is pushed to --registry-url first (the manifest
server's registry), any other is pinned to the digest its registry serves.
--embed-images also carries the images inside the release, as the payload
releases/<version>/images.tar.xz (kind "images"): an xz-compressed tar in the
format of "docker image save", each image tagged <repository>:sha256-<hex> of
its pinned digest, for sites that cannot reach a registry; the device loads it
with the engine's image load.

Root deltas: a device running one of the --delta-from newest earlier
releases of the same channel and board downloads
releases/<version>/rootfs-from-<earlier>.delta.xz instead of the full root
payload (kind "delta"; the full payload stays for every other device and as
the fallback when the device's slot does not verify against the delta). The
earlier root images are read from --cache when it holds them (files
<sha256>.ext4, to which every release adds its own), else decompressed from
their full payloads in the repository. A delta no smaller than the full
payload is left out. --delta-from 0 makes none.

The counter is the anti-rollback counter: devices install only releases
whose counter is above the one they run and never below their floor.
SOURCE_DATE_EPOCH, if set, makes the images reproducible.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		f := relFlags
		for name, v := range map[string]string{"--repo": f.repo, "--keys": f.keys, "--rootfs": f.rootfs, "--boot": f.boot, "--version": f.version} {
			if v == "" {
				return usageError{fmt.Errorf("%s is required", name)}
			}
		}
		if f.counter == 0 {
			return usageError{fmt.Errorf("--counter is required and must be at least 1")}
		}
		o := imagebuilder.ReleaseOptions{Repo: f.repo, Keys: f.keys, RootFS: f.rootfs, BootDir: f.boot, Version: f.version,
			Counter: f.counter, Channel: f.channel, Compatible: f.compatible, HealthDeadline: f.deadline}
		if f.deltaFrom < 0 {
			return usageErrorf("--delta-from %d: want 0 or more", f.deltaFrom)
		}
		o.DeltaFrom, o.DeltaCache = f.deltaFrom, f.deltaCache
		var err error
		if o.RootSize, err = imagebuilder.ParseSize(f.rootSize); err != nil {
			return usageError{fmt.Errorf("--root-size: %w", err)}
		}
		if o.BootSize, err = imagebuilder.ParseSize(f.bootSize); err != nil {
			return usageError{fmt.Errorf("--boot-size: %w", err)}
		}
		if o.HealthChecks, err = healthChecks(); err != nil {
			return usageError{err}
		}
		if o.Epoch, err = sourceDateEpoch(); err != nil {
			return err
		}
		if !f.quiet {
			o.Logf = func(format string, args ...any) {
				fmt.Fprintf(cmd.ErrOrStderr(), "imagebuilder: "+format+"\n", args...)
			}
		}
		if o.Containers, o.ImagesTar, err = releaseContainers(cmd.Context(), cmd.ErrOrStderr()); err != nil {
			return err
		}
		if o.ImagesTar != "" {
			defer os.Remove(o.ImagesTar)
		}
		m, err := imagebuilder.BuildRelease(cmd.Context(), o)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "published %s (counter %d, channel %s, board %s): root %s, boot %s\n",
			m.Version, m.Counter, m.Channel, m.Compatible, imagebuilder.FormatSize(m.Rootfs.Size), imagebuilder.FormatSize(m.Boot.Size))
		for _, p := range m.Payloads {
			fmt.Fprintf(cmd.OutOrStdout(), "  %-40s %10d bytes  sha256 %s\n", p.Target, p.Size, p.SHA256)
		}
		return nil
	},
}

func healthChecks() ([]release.HealthCheck, error) {
	f := relFlags
	var cs []release.HealthCheck
	if f.checksFile != "" {
		b, err := os.ReadFile(f.checksFile)
		if err != nil {
			return nil, fmt.Errorf("--health-checks: %w", err)
		}
		if err := json.Unmarshal(b, &cs); err != nil {
			return nil, fmt.Errorf("--health-checks %s: %w", f.checksFile, err)
		}
	}
	for _, u := range f.httpChecks {
		cs = append(cs, release.HealthCheck{Kind: release.CheckHTTP, URL: u})
	}
	for _, a := range f.tcpChecks {
		cs = append(cs, release.HealthCheck{Kind: release.CheckTCP, Address: a})
	}
	for _, c := range f.cmdChecks {
		argv := strings.Fields(c)
		if len(argv) == 0 {
			return nil, fmt.Errorf("--health-cmd: empty command")
		}
		cs = append(cs, release.HealthCheck{Kind: release.CheckCommand, Command: argv})
	}
	for _, u := range f.unitChecks {
		cs = append(cs, release.HealthCheck{Kind: release.CheckSystemd, Unit: u})
	}
	return cs, nil
}

func init() {
	f := releaseCmd.Flags()
	f.StringVar(&relFlags.repo, "repo", "", "repository directory (see init-repo) (required)")
	f.StringVar(&relFlags.keys, "keys", "", "directory with the targets key, and the snapshot and timestamp keys (required)")
	f.StringVar(&relFlags.rootfs, "rootfs", "", "root file system: directory, .tar, .tar.gz/.tgz or .tar.xz (required)")
	f.StringVar(&relFlags.boot, "boot", "", "directory of boot files, with cmdline.txt (required)")
	f.StringVar(&relFlags.version, "version", "", "release version (required)")
	f.Uint64Var(&relFlags.counter, "counter", 0, "anti-rollback counter, above every earlier release's (required)")
	f.StringVar(&relFlags.channel, "channel", "stable", "release channel")
	f.StringVar(&relFlags.compatible, "compatible", imagebuilder.DefaultCompatible, "board id the release is for")
	f.StringVar(&relFlags.rootSize, "root-size", "1G", "size of the root image; at most the cards' root partitions")
	f.StringVar(&relFlags.bootSize, "boot-size", "256M", "size of the boot image; at most the cards' boot partitions")
	f.StringArrayVar(&relFlags.httpChecks, "health-http", nil, "health check: URL that must answer 200 (repeatable)")
	f.StringArrayVar(&relFlags.tcpChecks, "health-tcp", nil, "health check: host:port that must accept a connection (repeatable)")
	f.StringArrayVar(&relFlags.cmdChecks, "health-cmd", nil, "health check: command that must exit 0, split on blanks (repeatable)")
	f.StringArrayVar(&relFlags.unitChecks, "health-unit", nil, "health check: systemd unit that must be active (repeatable)")
	f.StringVar(&relFlags.checksFile, "health-checks", "", "JSON file with a list of health checks")
	f.DurationVar(&relFlags.deadline, "health-deadline", 2*time.Minute, "time the trial boot has to pass every health check")
	f.BoolVarP(&relFlags.quiet, "quiet", "q", false, "do not print progress to stderr")
	f.StringVar(&relFlags.composeFile, "compose", "", "compose file with the release's container set")
	f.StringArrayVar(&relFlags.images, "docker-image", nil, "image of one service of the container set (repeatable)")
	f.StringArrayVar(&relFlags.env, "env", nil, "KEY=VALUE for ${KEY} in the compose file (repeatable)")
	f.StringVar(&relFlags.strategy, "strategy", "", "container update strategy (download-then-kill, kill-then-download, hand-over); overrides x-ota-strategy")
	f.StringVar(&relFlags.registryURL, "registry-url", "http://127.0.0.1:8080", "registry that receives images found only in the local engine")
	f.StringVar(&relFlags.dockerHost, "docker-host", "unix:///var/run/docker.sock", "Docker engine holding locally built images")
	f.BoolVar(&relFlags.noEngine, "no-engine", false, "do not look for images in a local Docker engine")
	f.BoolVar(&relFlags.embedImages, "embed-images", false, "carry the container images in the release (payload images.tar.xz)")
	f.IntVar(&relFlags.deltaFrom, "delta-from", 2, "make root deltas from this many newest earlier releases of the channel and board (0: none)")
	f.StringVar(&relFlags.deltaCache, "cache", "", "directory of uncompressed root images (<sha256>.ext4) to make deltas from; this release's is added")
	rootCmd.AddCommand(releaseCmd)
}
