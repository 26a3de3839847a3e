package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

var diskFlags struct {
	rootfs, boot, data, version, compatible, diskID, out string
	trustedRoot, updaterConfig                           string
	counter                                              uint64
	autobootSize, bootSize, rootSize, dataSize           string
	quiet, bothSlots                                     bool
}

var diskCmd = &cobra.Command{
	Use:   "disk --rootfs PATH --boot DIR --version V --out FILE [flags]",
	Short: "Build a flashable SD-card image for a first install",
	Long: `disk builds a flashable SD-card image holding one release in slot A.

Inputs:
  --rootfs  the root file system: a directory or a tar archive, plain, gzip
            (.tar.gz, .tgz) or xz (.tar.xz) compressed. Entries must be regular
            files, directories, symlinks or hard links with relative names
            without ".."; devices, fifos and sockets are refused (/dev is
            populated at run time). Modes (setuid included) are kept, and
            owners: keeping owners other than your own needs root.
  --boot    the boot files: firmware, kernel, config.txt and cmdline.txt
            (required). cmdline.txt must be one line; its root= is replaced
            (or added) with root=PARTUUID=<disk id>-05.
  --data    optional files for the data partition.
  --trusted-root  the update repository's root.json (imagebuilder keygen
            writes it): installed as /data/ota/trust/root.json, the trust
            anchor every update is verified against. Without it the card
            refuses every update.
  --updater-config  installed as /data/ota/updater.yaml (server, channel...).

Layout (MBR; each partition starts on a 4 MiB boundary):
  p1 autoboot  FAT16  autoboot.txt, 512 bytes: boot p2, try p3 on tryboot
  p2 boot A    FAT32  the boot files, and ota-slot.json recording version,
                      counter, board id and the sha256 and size of p5
  p3 boot B    FAT32  empty (with --both-slots: the same release, root= -06)
  p4 extended         holds p5..p7
  p5 root A    ext4   the root file system, no journal (mounted read-only)
  p6 root B           left zero: the first update writes it (--both-slots:
                      a copy of p5)
  p7 data      ext4   journal, label "data"
The image file is sparse; write it with a tool that keeps it so
(dd conv=sparse, bmaptool) or any card writer.

Determinism: with SOURCE_DATE_EPOCH set, modification times later than it
are clamped to it, every time the tools stamp is it, and every id they would
draw at random (disk id, ext4 UUID and hash seed, FAT volume ids) is derived
from a digest of the inputs, so the same inputs give the same bytes. Without
it the input times are kept and the current time is stamped.

Nothing is left at --out unless the whole card was built: it is written to a
temporary file beside it and renamed at the end.

Needs mkfs.ext4 and debugfs (e2fsprogs), mkfs.vfat (dosfstools), mcopy and
mmd (mtools).`,
	Example: `  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) imagebuilder disk \
      --rootfs rootfs.tar.xz --boot boot/ --data device/ \
      --version 1.4.0 --counter 14 --compatible rpi4 --out gateway.img`,
	Args: func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("disk takes no arguments, got %q", args)
		}
		return nil
	},
	RunE: runDisk,
}

func init() {
	f := diskCmd.Flags()
	f.StringVar(&diskFlags.rootfs, "rootfs", "", "root file system: directory, .tar, .tar.gz/.tgz or .tar.xz (required)")
	f.StringVar(&diskFlags.boot, "boot", "", "directory of boot files, with cmdline.txt (required)")
	f.StringVar(&diskFlags.data, "data", "", "directory of files for the data partition (optional)")
	f.StringVar(&diskFlags.trustedRoot, "trusted-root", "", "root.json of the update repository, installed as /data/ota/trust/root.json (needed to update)")
	f.StringVar(&diskFlags.updaterConfig, "updater-config", "", "ota-updater configuration, installed as /data/ota/updater.yaml")
	f.StringVar(&diskFlags.version, "version", "", "release version recorded in ota-slot.json (required)")
	f.StringVar(&diskFlags.compatible, "compatible", imagebuilder.DefaultCompatible, "board id the release is for")
	f.Uint64Var(&diskFlags.counter, "counter", 1, "release counter, for anti-rollback (at least 1)")
	f.StringVar(&diskFlags.diskID, "disk-id", "", "MBR disk id, 8 hex digits, not zero (default: derived from the inputs)")
	f.StringVar(&diskFlags.autobootSize, "autoboot-size", "16M", "size of the autoboot partition p1 (suffix K, M or G)")
	f.StringVar(&diskFlags.bootSize, "boot-size", "256M", "size of each boot partition p2, p3 (FAT32: at least 34M)")
	f.StringVar(&diskFlags.rootSize, "root-size", "1G", "size of each root partition p5, p6")
	f.StringVar(&diskFlags.dataSize, "data-size", "256M", "size of the data partition p7 (it grows on first boot)")
	f.StringVar(&diskFlags.out, "out", "", "card image to write (required)")
	f.BoolVarP(&diskFlags.quiet, "quiet", "q", false, "do not print progress to stderr")
	f.BoolVar(&diskFlags.bothSlots, "both-slots", false, "install the release in slot B too, instead of leaving it blank")
	rootCmd.AddCommand(diskCmd)
}

func runDisk(cmd *cobra.Command, _ []string) error {
	fl := diskFlags
	for _, req := range []struct{ flag, v string }{
		{"--rootfs", fl.rootfs}, {"--boot", fl.boot}, {"--version", fl.version}, {"--out", fl.out},
	} {
		if req.v == "" {
			return usageErrorf("%s is required", req.flag)
		}
	}
	if fl.counter == 0 {
		return usageErrorf("--counter must be at least 1")
	}
	o := imagebuilder.DiskOptions{
		Out: fl.out, RootFS: fl.rootfs, BootDir: fl.boot, DataDir: fl.data, TrustedRoot: fl.trustedRoot, UpdaterConfig: fl.updaterConfig, BothSlots: fl.bothSlots,
		Version: fl.version, Compatible: fl.compatible, Counter: fl.counter,
	}
	if fl.diskID != "" {
		s := strings.TrimPrefix(strings.ToLower(fl.diskID), "0x")
		id, err := strconv.ParseUint(s, 16, 32)
		if err != nil || len(s) > 8 || id == 0 {
			return usageErrorf("--disk-id %q: want 1 to 8 hex digits, not zero", fl.diskID)
		}
		o.DiskID = uint32(id)
	}
	for _, s := range []struct {
		flag, v string
		dst     *int64
	}{
		{"--autoboot-size", fl.autobootSize, &o.Layout.AutobootSize},
		{"--boot-size", fl.bootSize, &o.Layout.BootSize},
		{"--root-size", fl.rootSize, &o.Layout.RootSize},
		{"--data-size", fl.dataSize, &o.Layout.DataSize},
	} {
		n, err := imagebuilder.ParseSize(s.v)
		if err != nil {
			return usageErrorf("%s: %v", s.flag, err)
		}
		if n < sdcard.MiB {
			return usageErrorf("%s %s: at least 1M", s.flag, s.v)
		}
		*s.dst = n
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	o.Epoch = epoch
	if !fl.quiet {
		stderr := cmd.ErrOrStderr()
		o.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	card, err := imagebuilder.BuildDisk(cmd.Context(), o)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: disk id %08x, %s, slot A %s (root sha256 %s)\n",
		fl.out, card.DiskID, imagebuilder.FormatSize(card.Size), card.SlotInfo.Version, card.SlotInfo.RootSHA256)
	return nil
}
