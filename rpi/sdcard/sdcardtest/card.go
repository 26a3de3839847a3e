// Package sdcardtest makes small SD-card images in the project's layout for
// tests, with the same real tools the image builder uses (mkfs.vfat, mcopy,
// mkfs.ext4). Tests that call it are skipped where the tools are missing.
package sdcardtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// Card describes a test card. Zero values give a card whose slot A holds
// version "1.0.0" and whose slot B is blank.
type Card struct {
	DiskID   uint32 // default 0x1234abcd
	VersionA string // default "1.0.0"
	VersionB string // empty: slot B blank (empty FAT, zero root)
	// Autoboot is the content of autoboot.txt; nil means the canonical
	// file (committed 2, trial 3) padded to 512 bytes.
	Autoboot []byte
}

// Layout is the small layout test cards use.
var Layout = sdcard.Layout{AutobootSize: 16 * sdcard.MiB, BootSize: 33 * sdcard.MiB, RootSize: 8 * sdcard.MiB, DataSize: 8 * sdcard.MiB}

// RequireTools skips the test when a tool the cards need is missing.
func RequireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"mkfs.vfat", "mcopy", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian packages dosfstools, mtools, e2fsprogs): %v", tool, err)
		}
	}
}

// CanonicalAutoboot is autoboot.txt committing boot partition committed with
// trial as the [tryboot] partition, padded to 512 bytes, written by hand
// here so the card maker does not depend on the parser under test.
func CanonicalAutoboot(committed, trial int) []byte {
	s := fmt.Sprintf("[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n", committed, trial)
	pad := make([]byte, 512-len(s))
	for i := range pad {
		pad[i] = '#'
	}
	pad[len(pad)-1] = '\n'
	return append([]byte(s), pad...)
}

// Make builds the card in dir and returns its path.
func Make(t testing.TB, dir string, c Card) string {
	t.Helper()
	RequireTools(t)
	if c.DiskID == 0 {
		c.DiskID = 0x1234abcd
	}
	if c.VersionA == "" {
		c.VersionA = "1.0.0"
	}
	if c.Autoboot == nil {
		c.Autoboot = CanonicalAutoboot(2, 3)
	}
	tab, size, err := Layout.Table(c.DiskID)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "card.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	part := func(n int) sdcard.Partition {
		p, _ := tab.Get(n)
		return p
	}
	put := func(n int, src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, part(n).Start); err != nil {
			t.Fatal(err)
		}
	}
	fat := func(n int, fatBits, label string, files map[string][]byte) {
		p := filepath.Join(work, fmt.Sprintf("p%d.vfat", n))
		run(t, "truncate", "-s", fmt.Sprint(part(n).Size), p)
		run(t, "mkfs.vfat", "-F", fatBits, "-n", label, "-i", "12345678", "--invariant", p)
		for name, data := range files {
			src := filepath.Join(work, fmt.Sprintf("p%d-%s", n, name))
			if err := os.WriteFile(src, data, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "mcopy", "-i", p, src, "::/"+name)
		}
		put(n, p)
	}
	ext4 := func(n int, label string) {
		p := filepath.Join(work, fmt.Sprintf("p%d.ext4", n))
		run(t, "mkfs.ext4", "-q", "-F", "-L", label, "-O", "^has_journal", p, fmt.Sprintf("%dk", part(n).Size/1024))
		put(n, p)
	}
	bootFiles := func(slot sdcard.Slot, version string) map[string][]byte {
		info, _ := json.Marshal(sdcard.SlotInfo{Version: version, Counter: 1, Compatible: "rpi4"})
		return map[string][]byte{
			"config.txt":        []byte("arm_64bit=1\nkernel_watchdog_timeout=15\n"),
			"cmdline.txt":       []byte(fmt.Sprintf("console=tty1 root=PARTUUID=%s rootfstype=ext4 ro rootwait panic=10\n", sdcard.PartUUID(c.DiskID, slot.RootPartition()))),
			"kernel8.img":       []byte("not a real kernel\n"),
			sdcard.SlotInfoFile: info,
		}
	}
	fat(sdcard.PartAutoboot, "16", "AUTOBOOT", map[string][]byte{"autoboot.txt": c.Autoboot})
	fat(sdcard.PartBootA, "32", "BOOTA", bootFiles(sdcard.SlotA, c.VersionA))
	ext4(sdcard.PartRootA, "rootA")
	if c.VersionB != "" {
		fat(sdcard.PartBootB, "32", "BOOTB", bootFiles(sdcard.SlotB, c.VersionB))
		ext4(sdcard.PartRootB, "rootB")
	} else {
		fat(sdcard.PartBootB, "32", "BOOTB", nil)
	}
	ext4(sdcard.PartData, "data")
	return img
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
