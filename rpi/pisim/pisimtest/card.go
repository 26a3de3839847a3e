// Package pisimtest builds small SD-card images for tests that boot a
// virtual Pi, with the real tools the image builder uses: mkfs.vfat and
// mcopy (dosfstools, mtools) for the FAT partitions, mkfs.ext4 (e2fsprogs)
// for the root partitions. Each file system is made in place at its
// partition's offset, so the image stays sparse.
//
// A Card describes the image; Default is an A/B card whose two slots both
// boot, committed to A. Tests change the fields they care about and call
// Build.
package pisimtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// DiskID is the disk id of Default cards.
const DiskID uint32 = 0x1234abcd

// Card describes a test card.
type Card struct {
	DiskID uint32        // 0 means DiskID
	Layout sdcard.Layout // zero sizes take SmallLayout's
	// Autoboot is the content of autoboot.txt on partition 1; nil writes no
	// autoboot.txt.
	Autoboot []byte
	// Files of the FAT partitions 1, 2 and 3 (autoboot, boot A, boot B),
	// by name in their root directory. A nil or empty map leaves a
	// formatted, empty file system.
	AutobootFiles, BootA, BootB map[string][]byte
	// RootA and RootB make partitions 5 and 6 ext4 file systems; otherwise
	// they stay blank.
	RootA, RootB bool
	// Unformatted lists partitions to leave blank instead.
	Unformatted []int
}

// SmallLayout is the layout of test cards: big enough for valid FAT16 and
// FAT32 file systems (FAT32 needs 65525 clusters, so 64 MiB of 512-byte
// clusters), small enough to build in milliseconds. The image is sparse.
var SmallLayout = sdcard.Layout{AutobootSize: 16 << 20, BootSize: 64 << 20, RootSize: 16 << 20, DataSize: 8 << 20}

// Autoboot is the canonical padded autoboot.txt: committed partition
// committed, trial partition trial.
func Autoboot(tb testing.TB, committed, trial int) []byte {
	tb.Helper()
	b, err := rpi.NewAutoboot(committed, trial).RenderPadded(rpi.AutobootMaxSize)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BootFiles is a minimal bootable boot partition for slot s of disk id:
// config.txt, kernel8.img, cmdline.txt naming the slot's root partition
// by PARTUUID (with panic=10, as a deployed image has), and the slot's
// ota-slot.json with the given version.
func BootFiles(s sdcard.Slot, id uint32, version string) map[string][]byte {
	return map[string][]byte{
		"config.txt":        []byte("arm_64bit=1\nkernel=kernel8.img\n"),
		"kernel8.img":       []byte("kernel of slot " + string(s) + "\n"),
		"cmdline.txt":       []byte(Cmdline(s, id) + "\n"),
		sdcard.SlotInfoFile: []byte(fmt.Sprintf(`{"version":%q}`, version) + "\n"),
	}
}

// Cmdline is the kernel command line of slot s on disk id.
func Cmdline(s sdcard.Slot, id uint32) string {
	return "console=serial0,115200 root=PARTUUID=" + sdcard.PartUUID(id, s.RootPartition()) + " rootfstype=ext4 ro rootwait panic=10"
}

// Default is a card with both slots bootable (versions "1.0.0" in A,
// "2.0.0" in B) and autoboot.txt committed to A with B as the trial.
func Default(tb testing.TB) Card {
	return Card{
		DiskID:   DiskID,
		Autoboot: Autoboot(tb, sdcard.PartBootA, sdcard.PartBootB),
		BootA:    BootFiles(sdcard.SlotA, DiskID, "1.0.0"),
		BootB:    BootFiles(sdcard.SlotB, DiskID, "2.0.0"),
		RootA:    true,
		RootB:    true,
	}
}

// RequireTools skips the test when mkfs.vfat, mcopy or mkfs.ext4 is
// missing (Debian packages dosfstools, mtools, e2fsprogs).
func RequireTools(tb testing.TB) {
	tb.Helper()
	for _, tool := range []string{"mkfs.vfat", "mcopy", "mkfs.ext4"} {
		if _, err := lookTool(tool); err != nil {
			tb.Skipf("%s not found (install dosfstools, mtools and e2fsprogs): %v", tool, err)
		}
	}
}

// lookTool finds a tool in PATH or in the sbin directories, which are not
// always in a user's PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not in PATH, /usr/sbin or /sbin", name)
}

// Build writes the card to a new image in a temporary directory of tb and
// returns its path. It skips the test when the tools are missing.
func (c Card) Build(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "card.img")
	if err := c.Write(tb, path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Write writes the card to path.
func (c Card) Write(tb testing.TB, path string) error {
	tb.Helper()
	RequireTools(tb)
	id := c.DiskID
	if id == 0 {
		id = DiskID
	}
	l := c.Layout
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.AutobootSize, SmallLayout.AutobootSize)
	def(&l.BootSize, SmallLayout.BootSize)
	def(&l.RootSize, SmallLayout.RootSize)
	def(&l.DataSize, SmallLayout.DataSize)
	t, size, err := l.Table(id)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err = f.Truncate(size); err == nil {
		err = t.Write(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	skip := map[int]bool{}
	for _, n := range c.Unformatted {
		skip[n] = true
	}
	autoFiles := map[string][]byte{}
	for k, v := range c.AutobootFiles {
		autoFiles[k] = v
	}
	if c.Autoboot != nil {
		autoFiles[rpi.AutobootFile] = c.Autoboot
	}
	fats := []struct {
		n     int
		bits  string
		label string
		files map[string][]byte
	}{
		{sdcard.PartAutoboot, "16", "AUTOBOOT", autoFiles},
		{sdcard.PartBootA, "32", "BOOTA", c.BootA},
		{sdcard.PartBootB, "32", "BOOTB", c.BootB},
	}
	for _, fat := range fats {
		if skip[fat.n] {
			continue
		}
		p, _ := t.Get(fat.n)
		if err := makeFAT(tb, path, p, fat.bits, fat.label, fat.files); err != nil {
			return fmt.Errorf("partition %d: %w", fat.n, err)
		}
	}
	for _, r := range []struct {
		n  int
		on bool
	}{{sdcard.PartRootA, c.RootA}, {sdcard.PartRootB, c.RootB}} {
		if !r.on || skip[r.n] {
			continue
		}
		p, _ := t.Get(r.n)
		if err := run("mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", p.Start), path, fmt.Sprintf("%dk", p.Size/1024)); err != nil {
			return fmt.Errorf("partition %d: %w", r.n, err)
		}
	}
	return nil
}

func makeFAT(tb testing.TB, img string, p sdcard.Partition, bits, label string, files map[string][]byte) error {
	if err := run("mkfs.vfat", "-F", bits, "-n", label, "-i", "1234abcd", "--offset", fmt.Sprint(p.Start/sdcard.SectorSize),
		img, fmt.Sprint(p.Size/1024)); err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	dir := tb.TempDir()
	var names []string
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return err
		}
		names = append(names, filepath.Join(dir, name))
	}
	sort.Strings(names)
	args := append([]string{"-i", fmt.Sprintf("%s@@%d", img, p.Start)}, names...)
	return run("mcopy", append(args, "::")...)
}

func run(tool string, args ...string) error {
	path, err := lookTool(tool)
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", tool, args, err, out)
	}
	return nil
}
