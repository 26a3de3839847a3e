package imagebuilder_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// smallLayout keeps test cards small; FAT32 needs at least 34 MiB.
var smallLayout = sdcard.Layout{AutobootSize: 16 * sdcard.MiB, BootSize: 40 * sdcard.MiB, RootSize: 64 * sdcard.MiB, DataSize: 16 * sdcard.MiB}

var allTools = []string{"mkfs.ext4", "debugfs", "e2fsck", "mkfs.vfat", "fsck.vfat", "mcopy", "mmd", "sfdisk"}

// inputs makes a rootfs of the given kind ("dir", "tar", "tar.gz",
// "tar.xz"), boot files and data files under dir.
func inputs(t *testing.T, dir, kind string) imagebuilder.DiskOptions {
	t.Helper()
	var rootfs string
	if kind == "dir" {
		rootfs = filepath.Join(dir, "rootfs")
		if _, err := imagebuilder.Stage(context.Background(), writeArchive(t, dir, "tar", rootfsEntries), rootfs, imagebuilder.StageOptions{}); err != nil {
			t.Fatal(err)
		}
	} else {
		rootfs = writeArchive(t, dir, kind, rootfsEntries)
	}
	data := filepath.Join(dir, "data")
	writeTree(t, data, map[string]string{"ota/device.json": `{"id":"gw-1"}`, "ota/root.json": `{"signed":{}}`})
	return imagebuilder.DiskOptions{
		RootFS: rootfs, BootDir: bootFiles(t, filepath.Join(dir, "boot")), DataDir: data,
		Version: "1.4.0", Counter: 14, Compatible: "rpi4", Layout: smallLayout, Epoch: epoch,
	}
}

func build(t *testing.T, o imagebuilder.DiskOptions) imagebuilder.Card {
	t.Helper()
	card, err := imagebuilder.BuildDisk(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return card
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract copies partition n of the card into its own file.
func extract(t *testing.T, d *sdcard.Disk, n int, dst string) string {
	t.Helper()
	r, err := d.Section(n)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestDisk(t *testing.T) {
	needTools(t, allTools...)
	for _, kind := range []string{"dir", "tar", "tar.gz", "tar.xz"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			o := inputs(t, dir, kind)
			o.Out = filepath.Join(dir, "card.img")
			card := build(t, o)
			checkCard(t, o, card)
		})
	}
}

func checkCard(t *testing.T, o imagebuilder.DiskOptions, card imagebuilder.Card) {
	dir := filepath.Dir(o.Out)
	img := filepath.Base(o.Out)

	// The partition table, as sfdisk reads it.
	run(t, dir, "sfdisk", "--verify", img)
	var js struct {
		PartitionTable struct {
			Label, ID  string
			SectorSize int
			Partitions []struct {
				Node        string
				Start, Size int64
				Type        string
			}
		}
	}
	if err := json.Unmarshal([]byte(run(t, dir, "sfdisk", "--json", img)), &js); err != nil {
		t.Fatal(err)
	}
	pt := js.PartitionTable
	if got, want := pt.Label, "dos"; got != want {
		t.Errorf("label: got %q, want %q", got, want)
	}
	if got, want := pt.ID, fmt.Sprintf("0x%08x", card.DiskID); got != want {
		t.Errorf("disk id: got %s, want %s", got, want)
	}
	table, _, err := smallLayout.Table(card.DiskID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(pt.Partitions), 7; got != want {
		t.Fatalf("sfdisk sees %d partitions, want %d", got, want)
	}
	wantTypes := map[int]string{1: "e", 2: "c", 3: "c", 4: "f", 5: "83", 6: "83", 7: "83"}
	for i, p := range pt.Partitions {
		want, _ := table.Get(i + 1)
		if p.Start*512 != want.Start || (i+1 != 4 && p.Size*512 != want.Size) || p.Type != wantTypes[i+1] {
			t.Errorf("partition %d: got start %d size %d type %s, want start %d size %d type %s",
				i+1, p.Start*512, p.Size*512, p.Type, want.Start, want.Size, wantTypes[i+1])
		}
	}

	d, err := sdcard.Open(o.Out, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Table.CheckLayout(); err != nil {
		t.Fatal(err)
	}
	if got, want := d.Size(), card.Size; got != want {
		t.Errorf("card size: got %d, want %d", got, want)
	}

	// The file systems, as their own checkers see them.
	parts := t.TempDir()
	for _, n := range []int{1, 2, 3} {
		run(t, parts, "fsck.vfat", "-n", extract(t, d, n, filepath.Join(parts, fmt.Sprintf("p%d", n))))
	}
	for _, n := range []int{5, 7} {
		run(t, parts, "e2fsck", "-fn", extract(t, d, n, filepath.Join(parts, fmt.Sprintf("p%d", n))))
	}
	p6, _ := d.Section(sdcard.PartRootB)
	if b, _ := io.ReadAll(p6); len(bytes.Trim(b, "\x00")) != 0 {
		t.Errorf("root B is not blank")
	}

	// autoboot.txt: 512 bytes, boot p2, try p3.
	ab, err := d.ReadFile(sdcard.PartAutoboot, rpi.AutobootFile, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ab), rpi.AutobootMaxSize; got != want {
		t.Errorf("autoboot.txt: got %d bytes, want %d", got, want)
	}
	a, err := rpi.ParseAutoboot(ab)
	if err != nil {
		t.Fatal(err)
	}
	if a.Committed() != 2 || a.Trial() != 3 || !a.TrybootAB() {
		t.Errorf("autoboot.txt: committed %d trial %d tryboot_a_b %v, want 2, 3, true\n%s", a.Committed(), a.Trial(), a.TrybootAB(), ab)
	}
	if n, err := d.FileLength(sdcard.PartAutoboot, rpi.AutobootFile); err != nil || n != 512 {
		t.Errorf("autoboot.txt cannot be rewritten in place: length %d, %v", n, err)
	}

	// Boot A: cmdline.txt names root A by PARTUUID, the other files are there.
	cl, err := d.ReadFile(sdcard.PartBootA, "cmdline.txt", 4096)
	if err != nil {
		t.Fatal(err)
	}
	wantCl := fmt.Sprintf("console=serial0,115200 console=tty1 root=PARTUUID=%s rootfstype=ext4 fsck.repair=yes rootwait\n", sdcard.PartUUID(card.DiskID, 5))
	if string(cl) != wantCl {
		t.Errorf("cmdline.txt:\ngot  %q\nwant %q", cl, wantCl)
	}
	for name, want := range map[string]string{"config.txt": "arm_64bit=1\nkernel=kernel8.img\n", "overlays/vc4-kms-v3d.dtbo": "overlay"} {
		if got, err := d.ReadFile(sdcard.PartBootA, name, 1<<20); err != nil || string(got) != want {
			t.Errorf("boot A %s: got %q, %v; want %q", name, got, err, want)
		}
	}
	sj, err := d.ReadFile(sdcard.PartBootA, sdcard.SlotInfoFile, 4096)
	if err != nil {
		t.Fatal(err)
	}
	si, err := sdcard.ParseSlotInfo(sj)
	if err != nil {
		t.Fatal(err)
	}
	p5, _ := d.Section(sdcard.PartRootA)
	h := sha256.New()
	if _, err := io.Copy(h, p5); err != nil {
		t.Fatal(err)
	}
	want := sdcard.SlotInfo{Version: o.Version, Counter: o.Counter, Compatible: o.Compatible,
		RootSHA256: hex.EncodeToString(h.Sum(nil)), RootSize: smallLayout.RootSize}
	if si != want || card.SlotInfo != want {
		t.Errorf("ota-slot.json:\ngot  %+v\nwant %+v", si, want)
	}
	// Boot B is formatted and empty.
	if _, err := d.ReadFile(sdcard.PartBootB, sdcard.SlotInfoFile, 4096); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("boot B %s: got %v, want not found", sdcard.SlotInfoFile, err)
	}

	// Root A: modes, owners, links and times survive.
	p5img := filepath.Join(parts, "p5")
	stat := func(img, p string) string { return run(t, parts, "debugfs", "-R", "stat "+p, img) }
	checks := []struct{ path, re string }{
		{"/bin/su", `Mode:  04755`},
		{"/tmp", `Mode:  01777`},
		{"/home/pi", `User:  1000   Group:  1000`},
		{"/home/pi/.profile", `User:  1000   Group:  1000`},
		{"/etc/hostname", `User:     0   Group:     0`},
		{"/etc/hostname", `Links: 2`},
		{"/etc/localtime", `Fast link dest: "/usr/share/zoneinfo/UTC"`},
		{"/bin/sh", `Fast link dest: "busybox"`},
		{"/etc/os-release", `mtime: 0x5f5e1000`}, // 1600000000, before the epoch: kept
		{"/etc/os-release", `ctime: 0x6553f100`}, // the epoch
		{"/", `User:     0   Group:     0`},
	}
	for _, c := range checks {
		if out := stat(p5img, c.path); !regexp.MustCompile(regexp.QuoteMeta(c.re)).MatchString(out) {
			t.Errorf("root A %s: want %q in\n%s", c.path, c.re, out)
		}
	}
	features := func(img string) string { return run(t, parts, "debugfs", "-R", "features", img) }
	if f := features(p5img); strings.Contains(f, "has_journal") {
		t.Errorf("root A has a journal: %s", f)
	}
	p7img := filepath.Join(parts, "p7")
	if f := features(p7img); !strings.Contains(f, "has_journal") {
		t.Errorf("data has no journal: %s", f)
	}
	if got := run(t, parts, "debugfs", "-R", "cat /ota/device.json", p7img); !strings.Contains(got, `{"id":"gw-1"}`) {
		t.Errorf("data /ota/device.json: got %q", got)
	}
	if got := run(t, parts, "e2label", p7img); strings.TrimSpace(got) != "data" {
		t.Errorf("data label: got %q", got)
	}
}

// TestDiskGolden pins the partition table of a card with a given disk id.
func TestDiskGolden(t *testing.T) {
	needTools(t, allTools...)
	dir := t.TempDir()
	o := inputs(t, dir, "tar")
	o.Out = filepath.Join(dir, "card.img")
	o.DiskID = 0x1234abcd
	card := build(t, o)
	if card.DiskID != o.DiskID {
		t.Fatalf("disk id: got %08x, want %08x", card.DiskID, o.DiskID)
	}
	got := run(t, dir, "sfdisk", "--dump", "card.img")
	golden := filepath.Join("testdata", "card.sfdisk")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("sfdisk --dump:\ngot\n%s\nwant\n%s", got, want)
	}
}

// TestDiskDeterministic builds the same card twice, more than a second
// (and a FAT time step) apart, into different directories.
func TestDiskDeterministic(t *testing.T) {
	needTools(t, allTools...)
	dir := t.TempDir()
	o := inputs(t, dir, "tar.xz")
	var sums [2][32]byte
	var ids [2]uint32
	for i := range sums {
		if i > 0 {
			time.Sleep(2100 * time.Millisecond)
		}
		outDir := filepath.Join(dir, fmt.Sprintf("out%d", i))
		if err := os.Mkdir(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
		o.Out = filepath.Join(outDir, "card.img")
		ids[i] = build(t, o).DiskID
		b, err := os.ReadFile(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
	}
	if sums[0] != sums[1] {
		t.Fatalf("two builds of the same inputs differ: %x and %x", sums[0], sums[1])
	}
	if ids[0] == 0 {
		t.Errorf("derived disk id is zero")
	}
	// Another version is another card, with another disk id.
	o.Version = "1.4.1"
	o.Out = filepath.Join(dir, "other.img")
	if id := build(t, o).DiskID; id == ids[0] {
		t.Errorf("disk id %08x does not depend on the inputs", id)
	}
}
