package imagebuilder_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

var smallLayout = sdcard.Layout{AutobootSize: 16 * sdcard.MiB, BootSize: 40 * sdcard.MiB, RootSize: 64 * sdcard.MiB, DataSize: 16 * sdcard.MiB}

func TestSmoke(t *testing.T) {
	needTools(t, "mkfs.ext4", "debugfs", "mkfs.vfat", "mcopy", "mmd")
	dir := t.TempDir()
	rootfs := writeArchive(t, dir, "tar.gz", rootfsEntries)
	boot := bootFiles(t, filepath.Join(dir, "boot"))
	out := filepath.Join(dir, "card.img")
	card, err := imagebuilder.BuildDisk(context.Background(), imagebuilder.DiskOptions{
		Out: out, RootFS: rootfs, BootDir: boot, Version: "1.0.0", Counter: 1, Layout: smallLayout, Epoch: epoch, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", card)
}
