package imagebuilder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/atomicfile"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// CmdlineFile is the kernel command line file every boot directory must hold.
const CmdlineFile = "cmdline.txt"

// DiskOptions describe a card for BuildDisk.
type DiskOptions struct {
	Out     string // the card image to write (replaced only on success)
	RootFS  string // directory or tar archive (plain, gzip or xz)
	BootDir string // firmware, kernel, config.txt, cmdline.txt
	DataDir string // optional: files for the data partition
	// TrustedRoot is the root.json of the update repository (from
	// `imagebuilder keygen`, or the repository's newest metadata/root.json);
	// it is installed as ota/trust/root.json on the data partition so the
	// card can verify updates. Empty: the card cannot update until one is
	// installed.
	TrustedRoot string
	// UpdaterConfig is installed as ota/updater.yaml on the data partition
	// (server URL, channel, ...). Optional.
	UpdaterConfig string
	// BothSlots installs the release in slot B too (a factory image whose
	// two slots start out equal), instead of leaving slot B blank.
	BothSlots  bool
	Version    string // release version, required
	Compatible string // board id the release is for (empty: "rpi4")
	Counter    uint64 // release counter for anti-rollback, at least 1
	// DiskID is the MBR disk id the PARTUUIDs derive from. Zero: derived
	// from all the inputs, never zero.
	DiskID uint32
	Layout sdcard.Layout // partition sizes; zero fields take the defaults
	// Epoch is SOURCE_DATE_EPOCH: modification times are clamped to it and
	// the tools stamp it. Zero keeps input times and the output is not
	// reproducible.
	Epoch time.Time
	// WorkDir holds the staging directories (empty: the directory of Out,
	// so that large trees land on the same disk as the card).
	WorkDir string
	// Logf receives one short line per phase. Nil: silent.
	Logf func(format string, args ...any)
}

// DefaultCompatible is the board id used when none is given.
const DefaultCompatible = "rpi4"

// Card is what BuildDisk made.
type Card struct {
	DiskID   uint32
	Size     int64
	SlotInfo sdcard.SlotInfo // ota-slot.json of slot A
}

// BuildDisk builds the flashable card described by o (see the package
// documentation for the layout). The card is written to a sparse temporary
// file beside o.Out and renamed onto it once complete; on error nothing is
// left behind.
func BuildDisk(ctx context.Context, o DiskOptions) (card Card, err error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Compatible == "" {
		o.Compatible = DefaultCompatible
	}
	if err := o.check(); err != nil {
		return card, err
	}
	layout := o.Layout.Defaults()
	if _, _, err := layout.Table(1); err != nil {
		return card, err
	}
	for _, c := range []struct {
		name string
		v    int64
		min  int64
	}{{"autoboot", layout.AutobootSize, MinFAT16Size}, {"boot", layout.BootSize, MinFAT32Size},
		{"root", layout.RootSize, 1 << 20}, {"data", layout.DataSize, 1 << 20}} {
		if c.v < c.min {
			return card, fmt.Errorf("%s partition size %s: at least %s needed", c.name, FormatSize(c.v), FormatSize(c.min))
		}
	}
	if layout.RootSize%ext4BlockSize != 0 || layout.DataSize%ext4BlockSize != 0 {
		return card, fmt.Errorf("root and data partition sizes must be multiples of %d bytes", ext4BlockSize)
	}

	outDir := filepath.Dir(o.Out)
	workDir := o.WorkDir
	if workDir == "" {
		workDir = outDir
	}
	work, err := os.MkdirTemp(workDir, "."+filepath.Base(o.Out)+".work-*")
	if err != nil {
		return card, err
	}
	defer os.RemoveAll(work)

	rootImg := filepath.Join(work, "root.img")
	rootTree, err := buildRootImage(ctx, o.RootFS, work, rootImg, layout.RootSize, o.Epoch, logf)
	if err != nil {
		return card, err
	}
	bootDir := filepath.Join(work, "boot")
	cmdline, err := stageBoot(ctx, o.BootDir, bootDir, layout.BootSize, o.Epoch, logf)
	if err != nil {
		return card, err
	}
	if _, err := SetCmdlineRoot(cmdline, "PARTUUID="+sdcard.PartUUID(1, sdcard.PartRootA)); err != nil { // check it early
		return card, fmt.Errorf("boot files in %s: %w", o.BootDir, err)
	}
	dataDir := filepath.Join(work, "data")
	if o.DataDir != "" {
		logf("staging data files from %s", o.DataDir)
		if _, err := Stage(ctx, o.DataDir, dataDir, StageOptions{Epoch: o.Epoch, MaxBytes: layout.DataSize}); err != nil {
			return card, fmt.Errorf("data files: %w", err)
		}
	} else if err := os.Mkdir(dataDir, 0o755); err != nil {
		return card, err
	}
	if err := installUpdaterFiles(dataDir, o.TrustedRoot, o.UpdaterConfig, o.Epoch); err != nil {
		return card, err
	}
	if err := clampTime(dataDir, o.Epoch); err != nil {
		return card, err
	}

	diskID := o.DiskID
	if diskID == 0 {
		seed, err := o.inputDigest(rootTree.Dir, bootDir, dataDir, layout)
		if err != nil {
			return card, err
		}
		diskID = seed.Derive("disk-id").Uint32()
	}
	table, diskSize, err := layout.Table(diskID)
	if err != nil {
		return card, err
	}
	part := func(n int) sdcard.Partition { p, _ := table.Get(n); return p }

	f, err := os.CreateTemp(outDir, filepath.Base(o.Out)+".tmp-*")
	if err != nil {
		return card, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(diskSize); err != nil {
		return card, err
	}

	logf("writing root A (p%d) and hashing it", sdcard.PartRootA)
	sum, err := copyImage(ctx, f, part(sdcard.PartRootA), rootImg)
	if err != nil {
		return card, err
	}

	info := sdcard.SlotInfo{Version: o.Version, Counter: o.Counter, Compatible: o.Compatible,
		RootSHA256: hex.EncodeToString(sum[:]), RootSize: layout.RootSize}
	cmdline, err = SetCmdlineRoot(cmdline, "PARTUUID="+sdcard.PartUUID(diskID, sdcard.PartRootA))
	if err != nil {
		return card, err
	}
	if err := writeSlotFiles(bootDir, cmdline, info, o.Epoch); err != nil {
		return card, err
	}

	autoboot, err := rpi.NewAutoboot(sdcard.PartBootA, sdcard.PartBootB).RenderPadded(rpi.AutobootMaxSize)
	if err != nil {
		return card, err
	}
	autobootDir := filepath.Join(work, "autoboot")
	if err := os.Mkdir(autobootDir, 0o755); err != nil {
		return card, err
	}
	if err := writeStaged(autobootDir, rpi.AutobootFile, autoboot, o.Epoch); err != nil {
		return card, err
	}
	emptyDir := filepath.Join(work, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		return card, err
	}
	if err := clampTime(emptyDir, o.Epoch); err != nil {
		return card, err
	}
	bootB, bootBWhat := emptyDir, "boot B (empty)"
	if o.BothSlots {
		logf("writing root B (p%d), a copy of root A", sdcard.PartRootB)
		if _, err := copyImage(ctx, f, part(sdcard.PartRootB), rootImg); err != nil {
			return card, err
		}
		bootB, bootBWhat = filepath.Join(work, "bootB"), "boot B"
		if _, err := stageBoot(ctx, o.BootDir, bootB, layout.BootSize, o.Epoch, logf); err != nil {
			return card, err
		}
		cmdlineB, err := SetCmdlineRoot(cmdline, "PARTUUID="+sdcard.PartUUID(diskID, sdcard.PartRootB))
		if err != nil {
			return card, err
		}
		if err := writeSlotFiles(bootB, cmdlineB, info, o.Epoch); err != nil {
			return card, err
		}
	}

	fats := []struct {
		n     int
		what  string
		dir   string
		bits  int
		label string
	}{
		{sdcard.PartBootA, "boot A", bootDir, 32, "BOOT-A"},
		{sdcard.PartBootB, bootBWhat, bootB, 32, "BOOT-B"},
		{sdcard.PartAutoboot, "autoboot", autobootDir, 16, "AUTOBOOT"},
	}
	for _, fat := range fats {
		p := part(fat.n)
		logf("making %s FAT%d (p%d, %s)", fat.what, fat.bits, fat.n, FormatSize(p.Size))
		img := filepath.Join(work, fmt.Sprintf("p%d.img", fat.n))
		opts := FATOptions{Bits: fat.bits, Label: fat.label, Offset: p.Start, Epoch: o.Epoch}
		if err := BuildFAT(ctx, fat.dir, img, p.Size, opts); err != nil {
			return card, fmt.Errorf("%s partition: %w", fat.what, err)
		}
		if _, err := copyImage(ctx, f, p, img); err != nil {
			return card, err
		}
		os.Remove(img)
	}

	logf("making data ext4 (p%d, %s)", sdcard.PartData, FormatSize(layout.DataSize))
	dataImg := filepath.Join(work, "data.img")
	if err := BuildExt4(ctx, dataDir, dataImg, layout.DataSize, Ext4Options{Label: "data", Journal: true, ReservedPercent: 5, Epoch: o.Epoch}); err != nil {
		return card, fmt.Errorf("data partition: %w", err)
	}
	if _, err := copyImage(ctx, f, part(sdcard.PartData), dataImg); err != nil {
		return card, err
	}

	logf("writing partition table (disk id %08x)", diskID)
	if err := table.Write(f); err != nil {
		return card, err
	}
	if err := f.Sync(); err != nil {
		return card, err
	}
	if err := f.Close(); err != nil {
		return card, err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return card, err
	}
	if err := os.Rename(f.Name(), o.Out); err != nil {
		return card, err
	}
	if err := atomicfile.SyncDir(outDir); err != nil {
		return card, err
	}
	logf("wrote %s (%s)", o.Out, FormatSize(diskSize))
	return Card{DiskID: diskID, Size: diskSize, SlotInfo: info}, nil
}

func (o *DiskOptions) check() error {
	switch {
	case o.Out == "":
		return errors.New("no output file")
	case o.RootFS == "":
		return errors.New("no root file system")
	case o.BootDir == "":
		return errors.New("no boot directory")
	case o.Counter == 0:
		return errors.New("release counter must be at least 1")
	}
	for what, v := range map[string]string{"version": o.Version, "board id": o.Compatible} {
		if v == "" {
			return fmt.Errorf("no %s", what)
		}
		if len(v) > 128 || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\\' }) >= 0 {
			return fmt.Errorf("%s %q: want at most 128 printable characters without blanks or quotes", what, v)
		}
	}
	if st, err := os.Stat(o.BootDir); err != nil {
		return fmt.Errorf("boot directory: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("boot directory %s is not a directory", o.BootDir)
	}
	if st, err := os.Lstat(filepath.Join(o.BootDir, CmdlineFile)); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("boot directory %s has no %s (a regular file) naming the root partition", o.BootDir, CmdlineFile)
	}
	if o.DataDir != "" {
		if st, err := os.Stat(o.DataDir); err != nil {
			return fmt.Errorf("data directory: %w", err)
		} else if !st.IsDir() {
			return fmt.Errorf("data directory %s is not a directory", o.DataDir)
		}
	}
	if _, err := os.Stat(o.RootFS); err != nil {
		return fmt.Errorf("root file system: %w", err)
	}
	if st, err := os.Stat(filepath.Dir(o.Out)); err != nil || !st.IsDir() {
		return fmt.Errorf("output directory of %s does not exist", o.Out)
	}
	return nil
}

// inputDigest stands for everything that goes on the card.
func (o *DiskOptions) inputDigest(root, boot, data string, l sdcard.Layout) (Digest, error) {
	var d Digest
	for _, dir := range []string{root, boot, data} {
		t, err := TreeDigest(dir)
		if err != nil {
			return d, err
		}
		d = d.Derive("tree", t)
	}
	return d.Derive("card", o.Version, o.Compatible, o.Counter, l.AutobootSize, l.BootSize, l.RootSize, l.DataSize, o.Epoch.Unix()), nil
}

// writeSlotFiles writes a slot's cmdline.txt and its ota-slot.json into
// the staged boot directory.
func writeSlotFiles(bootDir string, cmdline []byte, info sdcard.SlotInfo, epoch time.Time) error {
	slotJSON, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := writeStaged(bootDir, CmdlineFile, cmdline, epoch); err != nil {
		return err
	}
	return writeStaged(bootDir, sdcard.SlotInfoFile, append(slotJSON, '\n'), epoch)
}

// stageBoot stages the boot files of src into dst, at most maxBytes, and
// reads their cmdline.txt.
func stageBoot(ctx context.Context, src, dst string, maxBytes int64, epoch time.Time, logf func(string, ...any)) ([]byte, error) {
	logf("staging boot files from %s", src)
	if _, err := Stage(ctx, src, dst, StageOptions{Epoch: epoch, MaxBytes: maxBytes, IgnoreOwners: true}); err != nil {
		return nil, fmt.Errorf("boot files: %w", err)
	}
	cmdline, err := readCmdline(dst)
	if err != nil {
		return nil, fmt.Errorf("boot files in %s: %w", src, err)
	}
	return cmdline, nil
}

func readCmdline(dir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, CmdlineFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCmdline+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxCmdline {
		return nil, fmt.Errorf("%s: more than %d bytes", CmdlineFile, MaxCmdline)
	}
	return b, nil
}

// writeStaged writes a generated file into a staged tree with the epoch as
// its time (the current time when there is none).
func writeStaged(dir, name string, b []byte, epoch time.Time) error {
	p := filepath.Join(dir, name)
	if st, err := os.Lstat(p); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s in the boot files is not a regular file", name)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	if err := clampTime(p, epoch); err != nil {
		return err
	}
	return clampTime(dir, epoch)
}

// clampTime sets the time of p to the epoch, if there is one.
func clampTime(p string, epoch time.Time) error {
	if epoch.IsZero() {
		return nil
	}
	return os.Chtimes(p, epoch, epoch)
}

// copyImage writes the image file img into partition p of the card,
// skipping blocks of zeros so the card stays sparse, and returns the
// sha256 of the whole partition content. img must be exactly as large as p.
func copyImage(ctx context.Context, card *os.File, p sdcard.Partition, img string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(img)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return sum, err
	}
	if st.Size() != p.Size {
		return sum, fmt.Errorf("image %s is %d bytes, partition %d holds %d", filepath.Base(img), st.Size(), p.Number, p.Size)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < p.Size; {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		n, err := io.ReadFull(f, buf[:min(int64(len(buf)), p.Size-off)])
		if err != nil {
			return sum, fmt.Errorf("read %s: %w", filepath.Base(img), err)
		}
		h.Write(buf[:n])
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := card.WriteAt(buf[:n], p.Start+off); err != nil {
				return sum, fmt.Errorf("write partition %d: %w", p.Number, err)
			}
		}
		off += int64(n)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// installUpdaterFiles puts the trusted root and the updater configuration
// where the on-device updater looks for them: /data/ota/trust/root.json and
// /data/ota/updater.yaml. The root must be a valid self-signed TUF root.
func installUpdaterFiles(dataDir, rootJSON, config string, epoch time.Time) error {
	if rootJSON != "" {
		b, err := os.ReadFile(rootJSON)
		if err != nil {
			return fmt.Errorf("trusted root: %w", err)
		}
		store := &trust.Store{Dir: filepath.Join(dataDir, "ota", "trust")}
		if err := store.InstallRoot(b); err != nil {
			return fmt.Errorf("trusted root %s: %w", rootJSON, err)
		}
	}
	if config != "" {
		b, err := os.ReadFile(config)
		if err != nil {
			return fmt.Errorf("updater config: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(dataDir, "ota"), 0o755); err != nil {
			return err
		}
		if err := writeStaged(filepath.Join(dataDir, "ota"), "updater.yaml", b, epoch); err != nil {
			return err
		}
	}
	return nil
}
