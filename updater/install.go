package updater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater/payload"
	"github.com/healthguard/gateway-ota/updater/release"
)

// UpdateOptions change what Update does.
type UpdateOptions struct {
	// Version installs this release instead of the newest one.
	Version string
	// NoReboot stops after arming the trial.
	NoReboot bool
}

// UpdateResult says what Update did.
type UpdateResult struct {
	Version string      `json:"version"`
	Counter uint64      `json:"counter"`
	From    string      `json:"from"`
	Slot    sdcard.Slot `json:"slot"`
	Armed   bool        `json:"armed"`
	Reboot  string      `json:"reboot"` // what was done about the reboot
}

// Update installs the newest release (or opts.Version) into the other slot,
// arms a trial boot of it and reboots; see the package doc for the order.
func (u *Updater) Update(ctx context.Context, opts UpdateOptions) (*UpdateResult, error) {
	if u.cfg.Server == "" {
		return nil, ErrNoServer
	}
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := u.boot.Status()
	if err != nil {
		return nil, err
	}
	if st.Trial {
		return nil, fmt.Errorf("slot %s is on trial: %w (run ota-updater confirm)", st.Booted, ErrTrialPending)
	}
	if !st.Booted.Valid() {
		return nil, fmt.Errorf("booted partition %d is not a slot: %w", st.BootedPartition, bootctl.ErrLayout)
	}
	s, err := loadState(u.statePath())
	if err != nil {
		return nil, err
	}
	tc := u.trustClient()
	cand, _, err := u.choose(ctx, tc, st, s, opts.Version)
	if err != nil {
		return nil, err
	}
	m, err := tc.FetchManifest(ctx, cand.Version)
	if err != nil {
		return nil, err
	}
	u.pruneDownloads(m)
	target := st.Booted.Other()
	res := &UpdateResult{Version: m.Version, Counter: m.Counter, From: st.Slot(st.Booted).Version, Slot: target}
	fail := func(phase string, err error) (*UpdateResult, error) {
		s.Phase, s.Error = PhaseFailed, fmt.Sprintf("%s: %v", phase, err)
		if errors.Is(err, ErrIncompatible) {
			// Not to be retried: the daemon skips a release that failed.
			if s.Failed == nil {
				s.Failed = map[string]string{}
			}
			s.Failed[m.Version] = s.Error
		}
		if serr := saveState(u.statePath(), s); serr != nil {
			u.cfg.Logf("save state: %v", serr)
		}
		u.report(ctx, s, st, PhaseFailed, s.Error, 0)
		return nil, err
	}
	if m.Compatible != u.compatible(st) {
		return fail("check", fmt.Errorf("release %s is for board %q, this is %q: %w", m.Version, m.Compatible, u.compatible(st), ErrIncompatible))
	}

	if m.ContainerOnly() { // containers hook: no slot write, no reboot
		return u.updateContainers(ctx, tc, st, s, m, res)
	}

	// Plan the payloads and check that the card can hold the images (S9,
	// F7) before anything is written.
	rootPl, bootPl, err := pickPayloads(m)
	if err != nil {
		return fail("check", err)
	}
	d, err := sdcard.Open(st.Card, true)
	if err != nil {
		return fail("check", err)
	}
	defer d.Close()
	rootPart, _ := d.Partition(target.RootPartition())
	bootPart, _ := d.Partition(target.BootPartition())
	if m.Rootfs.Size > rootPart.Size || m.Boot.Size > bootPart.Size {
		return fail("check", fmt.Errorf("release %s needs a root of %d and a boot partition of %d bytes; slot %s has %d and %d: %w",
			m.Version, m.Rootfs.Size, m.Boot.Size, target, rootPart.Size, bootPart.Size, ErrIncompatible))
	}

	s.Phase, s.Version, s.Counter, s.From, s.Target, s.Error, s.Manifest = PhaseDownloading, m.Version, m.Counter, res.From, target, "", nil
	if err := saveState(u.statePath(), s); err != nil {
		return nil, err
	}
	u.report(ctx, s, st, PhaseDownloading, "", 0)
	files := map[*release.Payload]string{}
	// Root delta (delta_install.go): when the release has a delta from the
	// image the running slot records, it replaces the full root payload,
	// which is fetched later only if the delta is declined.
	var runningRootSHA string
	if info, err := d.SlotInfo(st.Booted); err == nil {
		runningRootSHA = info.RootSHA256
	}
	viaDelta := hasRootDelta(m, runningRootSHA)
	for _, p := range []*release.Payload{rootPl, bootPl} {
		if p == rootPl && viaDelta {
			continue // root delta
		}
		file, err := u.fetchPayload(ctx, tc, p)
		if err != nil {
			return fail("download", err)
		}
		files[p] = file
	}

	// Write the slot. The other slot's boot partition is invalidated first,
	// so a half-written slot never reads as a release.
	s.Phase = PhaseWriting
	if err := saveState(u.statePath(), s); err != nil {
		return nil, err
	}
	u.report(ctx, s, st, PhaseWriting, "", 0)
	if _, err := d.File().WriteAt(make([]byte, 64<<10), bootPart.Start); err != nil {
		return fail("write", fmt.Errorf("invalidate slot %s: %w", target, err))
	}
	if err := d.Sync(); err != nil {
		return fail("write", err)
	}
	// Root delta (delta_install.go): apply it, else fetch the full root
	// payload after all.
	if viaDelta {
		if viaDelta, err = u.installRootDelta(ctx, tc, m, d, st.Booted, rootPart, runningRootSHA); err != nil {
			return fail("write", err)
		}
		if !viaDelta {
			if files[rootPl], err = u.fetchPayload(ctx, tc, rootPl); err != nil {
				return fail("download", err)
			}
		}
	}
	for _, w := range []struct {
		p    *release.Payload
		part sdcard.Partition
		img  release.Image
	}{{rootPl, rootPart, m.Rootfs}, {bootPl, bootPart, m.Boot}} {
		if w.p == rootPl && viaDelta {
			continue // written by the root delta above
		}
		if err := u.writeImage(ctx, files[w.p], w.p, d, w.part, w.img); err != nil {
			return fail("write", err)
		}
	}
	if err := pointCmdline(d, target); err != nil {
		return fail("write", err)
	}
	if err := d.Sync(); err != nil {
		return fail("write", err)
	}
	d.Close()
	if err := u.stageContainers(ctx, tc, m); err != nil { // containers hook: every image present before arming (C2)
		return fail("images", err)
	}

	// Journal, then arm: the flag is the last thing set.
	s.Phase, s.Manifest = PhaseArmed, m
	if err := saveState(u.statePath(), s); err != nil {
		return nil, err
	}
	if _, err := u.boot.Try(); err != nil {
		return fail("arm", err)
	}
	res.Armed = true
	u.report(ctx, s, st, PhaseArmed, "", 1)
	for _, f := range files {
		os.Remove(f)
	}
	if opts.NoReboot {
		res.Reboot = "not rebooted (--no-reboot): the trial starts at the next reboot"
		return res, nil
	}
	res.Reboot, err = u.doReboot(ctx, true)
	return res, err
}

// pruneDownloads removes from the downloads directory what other releases
// left there (an abandoned download, a release that was replaced): only
// m's payloads stay, and their downloads resume.
func (u *Updater) pruneDownloads(m *release.Manifest) {
	dir := u.dataPath("downloads")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		keep := slices.ContainsFunc(m.Payloads, func(p release.Payload) bool {
			return strings.HasPrefix(e.Name(), p.SHA256+".")
		})
		if !keep {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// pickPayloads returns the full payloads of the root and boot images.
func pickPayloads(m *release.Manifest) (root, boot *release.Payload, err error) {
	r, okRoot := m.FullPayload(release.ForRootfs)
	b, okBoot := m.FullPayload(release.ForBoot)
	if !okRoot || !okBoot {
		return nil, nil, fmt.Errorf("release %s has no full payload for the root and boot images: %w", m.Version, ErrIncompatible)
	}
	return &r, &b, nil
}

// writeImage streams one downloaded payload file into a partition and reads
// the partition back. The payload is hashed again as it is read, from the
// same open file, so the bytes installed are the bytes verified (P5).
func (u *Updater) writeImage(ctx context.Context, file string, p *release.Payload, d *sdcard.Disk, part sdcard.Partition, img release.Image) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := payload.CheckedReader(f, p.Size, p.SHA256)
	if err != nil {
		return err
	}
	want := payload.Image{Size: img.Size, SHA256: img.SHA256}
	if err := payload.WriteImage(ctx, src, p.Codec, d.File(), part.Start, part.Size, want, u.progress("write "+p.For)); err != nil {
		return fmt.Errorf("%s image into partition %d: %w", p.For, part.Number, err)
	}
	if err := d.Sync(); err != nil {
		return err
	}
	if err := payload.VerifyRegion(ctx, d.File(), part.Start, img.Size, img.SHA256, u.progress("verify "+p.For)); err != nil {
		return fmt.Errorf("read back partition %d: %w", part.Number, err)
	}
	return nil
}

// cmdlineRoot matches the root= of a boot image's cmdline.txt. Release boot
// images carry a placeholder of the same length.
var cmdlineRoot = regexp.MustCompile(`root=PARTUUID=[0-9a-fA-F]{8}-[0-9a-fA-F]{2}`)

// pointCmdline rewrites cmdline.txt in the slot's boot partition so that its
// root= names the slot's own root partition on this card.
func pointCmdline(d *sdcard.Disk, slot sdcard.Slot) error {
	b, err := d.ReadFile(slot.BootPartition(), "cmdline.txt", 4096)
	if err != nil {
		return fmt.Errorf("boot image: %w", err)
	}
	if len(cmdlineRoot.FindAll(b, -1)) != 1 {
		return fmt.Errorf("boot image cmdline.txt must name its root once as root=PARTUUID=XXXXXXXX-NN: %w", ErrIncompatible)
	}
	want := []byte("root=PARTUUID=" + sdcard.PartUUID(d.Table.DiskID, slot.RootPartition()))
	nb := cmdlineRoot.ReplaceAll(b, want)
	if bytes.Equal(nb, b) {
		return nil
	}
	return d.RewriteFile(slot.BootPartition(), "cmdline.txt", nb)
}

// checkFree refuses a download the data partition cannot hold (F7).
func checkFree(dir string, need int64) error {
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil {
		return nil // unknown: let the write fail cleanly if it must
	}
	free := int64(sfs.Bavail) * int64(sfs.Bsize)
	if free < need+(16<<20) {
		return fmt.Errorf("data partition has %d MiB free, the download needs %d MiB: %w", free>>20, need>>20, syscall.ENOSPC)
	}
	return nil
}

// progress returns a payload progress callback printing a line at every
// tenth of the work, like "download rootfs   40%   11.2 MiB of 28.0 MiB   6.1 MiB/s".
func (u *Updater) progress(what string) payload.Progress {
	start := time.Now()
	last := -1
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		step := int(done * 10 / total)
		if step == last {
			return
		}
		last = step
		rate := float64(done) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(u.cfg.Progress, "%-16s %3d%%  %9s of %-9s %9s/s\n", what, done*100/total, humanBytes(float64(done)), humanBytes(float64(total)), humanBytes(rate))
	}
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
