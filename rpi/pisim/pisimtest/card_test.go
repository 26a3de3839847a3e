package pisimtest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// TestDefaultCardPassesFsck checks the cards the boot tests use with the
// file system checkers: fsck.vfat for the FAT partitions, e2fsck for the
// roots.
func TestDefaultCardPassesFsck(t *testing.T) {
	RequireTools(t)
	img := Default(t).Build(t)
	d, err := sdcard.Open(img, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Table.CheckLayout(); err != nil {
		t.Fatal(err)
	}
	checks := map[int][]string{
		sdcard.PartAutoboot: {"fsck.vfat", "-n"},
		sdcard.PartBootA:    {"fsck.vfat", "-n"},
		sdcard.PartBootB:    {"fsck.vfat", "-n"},
		sdcard.PartRootA:    {"e2fsck", "-fn"},
		sdcard.PartRootB:    {"e2fsck", "-fn"},
	}
	for n, check := range checks {
		tool, err := lookTool(check[0])
		if err != nil {
			t.Skipf("%v (install dosfstools and e2fsprogs)", err)
		}
		sec, err := d.Section(n)
		if err != nil {
			t.Fatal(err)
		}
		part := filepath.Join(t.TempDir(), "part")
		f, err := os.Create(part)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, sec); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if out, err := exec.Command(tool, append(check[1:], part)...).CombinedOutput(); err != nil {
			t.Errorf("partition %d: %s: %v\n%s", n, check[0], err, out)
		}
	}
	b, err := d.ReadFile(sdcard.PartBootB, sdcard.SlotInfoFile, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if si, err := sdcard.ParseSlotInfo(b); err != nil || si.Version != "2.0.0" {
		t.Errorf("slot B info: %+v, %v", si, err)
	}
}

// TestWriteReportsTruncateError checks that Write fails when it cannot size
// the card file (ftruncate fails on a character device) instead of going on
// with a blank table.
func TestWriteReportsTruncateError(t *testing.T) {
	RequireTools(t)
	err := Card{Unformatted: []int{sdcard.PartAutoboot, sdcard.PartBootA, sdcard.PartBootB}}.Write(t, os.DevNull)
	if err == nil || !strings.Contains(err.Error(), "write table") {
		t.Fatalf("Write to %s: %v, want a write table error", os.DevNull, err)
	}
}
