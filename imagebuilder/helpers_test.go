package imagebuilder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

// epoch is the SOURCE_DATE_EPOCH of the tests.
var epoch = time.Unix(1700000000, 0)

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages e2fsprogs, dosfstools, mtools, fdisk): %v", tool, err)
		}
	}
}

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	uid, gid   int
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(1600000000, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rootfsEntries is a tiny root file system with what matters: nested
// directories, a setuid binary, an absolute and a relative symlink, a hard
// link and files owned by another user.
var rootfsEntries = []tarEntry{
	{name: "bin/", typ: tar.TypeDir},
	{name: "bin/busybox", mode: 0o755, body: "#!/bin/sh\necho busybox\n"},
	{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
	{name: "bin/su", mode: 0o4755, body: "setuid\n"},
	{name: "etc/", typ: tar.TypeDir},
	{name: "etc/os-release", body: "ID=test\nVERSION_ID=1\n"},
	{name: "etc/hostname", body: "gateway\n"},
	{name: "etc/localtime", typ: tar.TypeSymlink, link: "/usr/share/zoneinfo/UTC"},
	{name: "etc/hostname.bak", typ: tar.TypeLink, link: "etc/hostname"},
	{name: "home/pi/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
	{name: "home/pi/.profile", body: "export PS1='$ '\n", uid: 1000, gid: 1000},
	{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
}

func writeArchive(t *testing.T, dir, kind string, entries []tarEntry) string {
	t.Helper()
	raw := makeTar(t, entries)
	var b bytes.Buffer
	name := filepath.Join(dir, "rootfs."+kind)
	switch kind {
	case "tar":
		b.Write(raw)
	case "tar.gz":
		zw := gzip.NewWriter(&b)
		zw.Write(raw)
		zw.Close()
	case "tar.xz":
		xw, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		xw.Write(raw)
		xw.Close()
	default:
		t.Fatalf("unknown archive kind %q", kind)
	}
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// writeTree writes files (name -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func bootFiles(t *testing.T, dir string) string {
	t.Helper()
	writeTree(t, dir, map[string]string{
		"cmdline.txt":               "console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 fsck.repair=yes rootwait\n",
		"config.txt":                "arm_64bit=1\nkernel=kernel8.img\n",
		"kernel8.img":               string(bytes.Repeat([]byte("kernel"), 5000)),
		"start4.elf":                "firmware",
		"overlays/vc4-kms-v3d.dtbo": "overlay",
	})
	return dir
}
