package pisim

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// maxDataCopy bounds what is copied out of the card's data partition.
const maxDataCopy = 256 << 20

// mountData stands in for the first mount of the data partition: the files
// the image builder put on p7 (device configuration, the trusted root of
// the update metadata) are copied into DEVICE/data, which the on-device
// commands then use as /data. A card without an ext4 p7 leaves it empty.
func mountData(image, dst string) error {
	d, err := sdcard.Open(image, false)
	if err != nil {
		return nil // no table: the firmware model reports it at boot
	}
	defer d.Close()
	p, ok := d.Table.Get(sdcard.PartData)
	if !ok {
		return nil
	}
	fsys, err := ext4.Read(file.New(d.File(), true), p.Size, p.Start, sdcard.SectorSize)
	if err != nil {
		return nil // not ext4 (blank): nothing to copy
	}
	var total int64
	return fs.WalkDir(fsys, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("data partition: %w", err)
		}
		if name == "." || name == "lost+found" {
			if e.IsDir() && name == "lost+found" {
				return fs.SkipDir
			}
			return nil
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("data partition: bad name %q", name)
		}
		out := filepath.Join(dst, filepath.FromSlash(name))
		switch {
		case e.IsDir():
			return os.MkdirAll(out, 0o755)
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			if total > maxDataCopy {
				return fmt.Errorf("data partition: more than %d bytes of files", maxDataCopy)
			}
			in, err := fsys.Open(name)
			if err != nil {
				return fmt.Errorf("data partition: %w", err)
			}
			defer in.Close()
			f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, io.LimitReader(in, info.Size())); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		return nil // links and special files are not needed by the updater
	})
}
