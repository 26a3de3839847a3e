package imagebuilder_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// TestDiskBadInput checks that every bad input fails with an error naming
// the problem and leaves nothing in the output directory, and that no
// link is followed out of the staging directory.
func TestDiskBadInput(t *testing.T) {
	needTools(t, allTools...)
	outside := t.TempDir() // what an escaping entry would write into
	withRootfs := func(entries ...tarEntry) func(*testing.T, *imagebuilder.DiskOptions) {
		return func(t *testing.T, o *imagebuilder.DiskOptions) {
			o.RootFS = writeArchive(t, filepath.Dir(o.BootDir), "tar.gz", entries)
		}
	}
	cases := []struct {
		name  string
		setup func(*testing.T, *imagebuilder.DiskOptions)
		want  string
	}{
		{"dotdot", withRootfs(tarEntry{name: "etc/../../evil", body: "x"}), `entry "etc/../../evil": name contains ".."`},
		{"absolute", withRootfs(tarEntry{name: "/etc/passwd", body: "x"}), `entry "/etc/passwd": absolute name`},
		{"char device", withRootfs(tarEntry{name: "dev/null", typ: tar.TypeChar}), `entry "dev/null": character device not allowed`},
		{"block device", withRootfs(tarEntry{name: "dev/sda", typ: tar.TypeBlock}), `entry "dev/sda": block device not allowed`},
		{"fifo", withRootfs(tarEntry{name: "run/fifo", typ: tar.TypeFifo}), `entry "run/fifo": fifo not allowed`},
		{"hard link outside", withRootfs(tarEntry{name: "passwd", typ: tar.TypeLink, link: "../../etc/passwd"}), `points outside the tree`},
		{"hard link absolute", withRootfs(tarEntry{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}), `points outside the tree`},
		{"hard link to nothing", withRootfs(tarEntry{name: "a", typ: tar.TypeLink, link: "b"}), `no earlier file`},
		{"write through symlink", withRootfs(
			tarEntry{name: "escape", typ: tar.TypeSymlink, link: outside},
			tarEntry{name: "escape/pwned", body: "x"}), `parent "escape" is not a directory`},
		{"write through relative symlink", withRootfs(
			tarEntry{name: "etc/", typ: tar.TypeDir},
			tarEntry{name: "up", typ: tar.TypeSymlink, link: "etc"},
			tarEntry{name: "up/passwd", body: "x"}), `parent "up" is not a directory`},
		{"file over directory", withRootfs(
			tarEntry{name: "etc/", typ: tar.TypeDir},
			tarEntry{name: "etc", body: "x"}), `entry "etc": replaces a directory`},
		{"control character", withRootfs(tarEntry{name: "etc/a\nb", body: "x"}), `control character`},
		{"empty archive", withRootfs(), `empty archive`},
		{"not an archive", func(t *testing.T, o *imagebuilder.DiskOptions) {
			o.RootFS = filepath.Join(filepath.Dir(o.BootDir), "junk.tar.gz")
			os.WriteFile(o.RootFS, []byte("\x1f\x8bnot gzip at all"), 0o644)
		}, `junk.tar.gz`},
		{"fifo in rootfs dir", func(t *testing.T, o *imagebuilder.DiskOptions) {
			o.RootFS = filepath.Join(filepath.Dir(o.BootDir), "rootdir")
			os.MkdirAll(o.RootFS, 0o755)
			if err := syscall.Mkfifo(filepath.Join(o.RootFS, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `entry "fifo": device, fifo or socket not allowed`},
		{"missing rootfs", func(t *testing.T, o *imagebuilder.DiskOptions) { o.RootFS += ".missing" }, `no such file`},
		{"no cmdline.txt", func(t *testing.T, o *imagebuilder.DiskOptions) {
			os.Remove(filepath.Join(o.BootDir, "cmdline.txt"))
		}, `has no cmdline.txt`},
		{"two-line cmdline.txt", func(t *testing.T, o *imagebuilder.DiskOptions) {
			os.WriteFile(filepath.Join(o.BootDir, "cmdline.txt"), []byte("console=tty1\nroot=/dev/sda\n"), 0o644)
		}, `more than one line`},
		{"symlink in boot files", func(t *testing.T, o *imagebuilder.DiskOptions) {
			os.Symlink("config.txt", filepath.Join(o.BootDir, "link.txt"))
		}, `link.txt: only files and directories fit on FAT`},
		{"names equal on FAT", func(t *testing.T, o *imagebuilder.DiskOptions) {
			os.WriteFile(filepath.Join(o.BootDir, "CONFIG.TXT"), []byte("x"), 0o644)
		}, `the same name on FAT`},
		{"root too small", func(t *testing.T, o *imagebuilder.DiskOptions) {
			o.Layout.RootSize = 4 * sdcard.MiB
			o.RootFS = writeArchive(t, filepath.Dir(o.BootDir), "tar", []tarEntry{{name: "big", body: strings.Repeat("x", 3<<20)}})
		}, `root file system: ext4 image of 4 MiB: too small for its content`},
		{"rootfs larger than root partition", func(t *testing.T, o *imagebuilder.DiskOptions) {
			o.Layout.RootSize = 4 * sdcard.MiB
			o.RootFS = writeArchive(t, filepath.Dir(o.BootDir), "tar", []tarEntry{{name: "big", body: strings.Repeat("x", 5<<20)}})
		}, `the files add up to more than 4 MiB`},
		{"boot files too large", func(t *testing.T, o *imagebuilder.DiskOptions) {
			os.WriteFile(filepath.Join(o.BootDir, "huge.img"), make([]byte, 79<<19), 0o644)
		}, `boot A partition: FAT32 image of 40 MiB: too small for its content`},
		{"data too small", func(t *testing.T, o *imagebuilder.DiskOptions) {
			os.WriteFile(filepath.Join(o.DataDir, "blob"), make([]byte, 15<<20), 0o644)
		}, `data partition: ext4 image of 16 MiB: too small for its content`},
		{"boot partition below FAT32 minimum", func(t *testing.T, o *imagebuilder.DiskOptions) {
			o.Layout.BootSize = 32 * sdcard.MiB
		}, `boot partition size 32 MiB: at least 34 MiB needed`},
		{"no version", func(t *testing.T, o *imagebuilder.DiskOptions) { o.Version = "" }, `no version`},
		{"version with blank", func(t *testing.T, o *imagebuilder.DiskOptions) { o.Version = "1 0" }, `version "1 0"`},
		{"counter zero", func(t *testing.T, o *imagebuilder.DiskOptions) { o.Counter = 0 }, `counter must be at least 1`},
		{"canceled", func(t *testing.T, o *imagebuilder.DiskOptions) {}, `context canceled`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := t.TempDir()
			o := inputs(t, in, "tar")
			out := t.TempDir()
			o.Out = filepath.Join(out, "card.img")
			c.setup(t, &o)
			ctx, cancel := context.WithCancel(context.Background())
			if c.name == "canceled" {
				cancel()
			}
			defer cancel()
			_, err := imagebuilder.BuildDisk(ctx, o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want one containing %q", err, c.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("output directory not empty after a failed build: %v", ents)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("an entry was written outside the staging directory: %v", ents)
			}
		})
	}
}

func TestDiskTooSmallIsErrTooSmall(t *testing.T) {
	needTools(t, allTools...)
	dir := t.TempDir()
	o := inputs(t, dir, "tar")
	o.Out = filepath.Join(dir, "card.img")
	os.WriteFile(filepath.Join(o.DataDir, "blob"), make([]byte, 15<<20), 0o644)
	if _, err := imagebuilder.BuildDisk(context.Background(), o); !errors.Is(err, imagebuilder.ErrTooSmall) {
		t.Errorf("got %v, want ErrTooSmall", err)
	}
}
