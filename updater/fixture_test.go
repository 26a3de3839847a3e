package updater_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/release"
)

// Sizes of the test cards and releases: small, so a full install takes a
// second or two.
var testLayout = sdcard.Layout{AutobootSize: 16 << 20, BootSize: 40 << 20, RootSize: 32 << 20, DataSize: 32 << 20}

var epoch = time.Unix(1767225600, 0)

func requireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (scripts/install-deps.sh installs the Debian packages): %v", tool, err)
		}
	}
}

// world is a repository with its keys, served over real HTTP, and a card
// image holding release 1.0.0 with the repository's trusted root.
type world struct {
	dir, keys, repo, card string
	srv                   *httptest.Server
}

// tree writes a small root file system and boot directory for version v.
func tree(t testing.TB, dir, v string) (rootfs, boot string) {
	t.Helper()
	rootfs, boot = filepath.Join(dir, "rootfs-"+v), filepath.Join(dir, "boot-"+v)
	files := map[string][]byte{
		filepath.Join(rootfs, "etc/os-release"):     []byte("VERSION_ID=" + v + "\n"),
		filepath.Join(rootfs, "usr/bin/service"):    append(bytes.Repeat([]byte("service "), 200000), v...),
		filepath.Join(boot, "config.txt"):           []byte("arm_64bit=1\n"),
		filepath.Join(boot, "cmdline.txt"):          []byte("console=serial0,115200 root=PARTUUID=00000000-00 rootfstype=ext4 ro rootwait panic=10\n"),
		filepath.Join(boot, "kernel8.img"):          bytes.Repeat([]byte{0x1f}, 1<<20),
		filepath.Join(rootfs, "var/lib/ota/.keep"):  nil,
		filepath.Join(rootfs, "usr/share/doc/note"): []byte(v),
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs, boot
}

func newWorld(t testing.TB) *world {
	t.Helper()
	requireTools(t)
	w := &world{dir: t.TempDir()}
	w.keys, w.repo = filepath.Join(w.dir, "keys"), filepath.Join(w.dir, "repo")
	if err := publish.Keygen(w.keys, publish.KeygenOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Init(w.repo, w.keys, publish.Options{}); err != nil {
		t.Fatal(err)
	}
	rootfs, boot := tree(t, w.dir, "1.0.0")
	w.card = filepath.Join(w.dir, "card.img")
	_, err := imagebuilder.BuildDisk(context.Background(), imagebuilder.DiskOptions{
		Out: w.card, RootFS: rootfs, BootDir: boot, Version: "1.0.0", Counter: 1, Layout: testLayout,
		TrustedRoot: filepath.Join(w.keys, "root.json"), Epoch: epoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = httptest.NewServer(http.FileServer(http.Dir(w.repo)))
	t.Cleanup(w.srv.Close)
	return w
}

// publish builds and publishes release v with counter n.
func (w *world) publish(t testing.TB, v string, n uint64, checks ...release.HealthCheck) *release.Manifest {
	t.Helper()
	rootfs, boot := tree(t, w.dir, v)
	m, err := imagebuilder.BuildRelease(context.Background(), imagebuilder.ReleaseOptions{
		Repo: w.repo, Keys: w.keys, RootFS: rootfs, BootDir: boot, Version: v, Counter: n,
		RootSize: testLayout.RootSize, BootSize: testLayout.BootSize, HealthChecks: checks,
		HealthDeadline: 5 * time.Second, Epoch: epoch, WorkDir: w.dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// device makes a virtual Pi around a copy of the card and powers it on.
func (w *world) device(t testing.TB) *pisim.Device {
	t.Helper()
	d, err := pisim.Create(filepath.Join(t.TempDir(), "pi"), w.card, pisim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PowerOn(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (w *world) updater(t testing.TB, d *pisim.Device, mod ...func(*updater.Config)) *updater.Updater {
	t.Helper()
	cfg := updater.Config{Root: d.Root(), Server: w.srv.URL, Logf: t.Logf}
	for _, m := range mod {
		m(&cfg)
	}
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func bootStatus(t testing.TB, d *pisim.Device) *bootctl.Status {
	t.Helper()
	st, err := (&bootctl.Controller{Root: d.Root()}).Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// partHash hashes the first n bytes of partition part of the device's card
// (the whole partition when n is 0).
func partHash(t testing.TB, d *pisim.Device, part int, n int64) string {
	t.Helper()
	c, err := sdcard.Open(d.Image(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sec, err := c.Section(part)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		n = sec.Size()
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(sec, 0, n)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// untouched snapshots slot B of a device and returns a check that it has
// not been written to and no trial is armed.
func untouched(t testing.TB, d *pisim.Device) func() {
	t.Helper()
	boot, root := partHash(t, d, sdcard.PartBootB, 0), partHash(t, d, sdcard.PartRootB, 0)
	return func() {
		t.Helper()
		st := bootStatus(t, d)
		if st.Armed {
			t.Error("a trial is armed")
		}
		if !st.Slot(sdcard.SlotB).Empty {
			t.Errorf("slot B reads as a release: %+v", st.Slot(sdcard.SlotB))
		}
		if got := partHash(t, d, sdcard.PartBootB, 0); got != boot {
			t.Error("boot partition of slot B was written")
		}
		if got := partHash(t, d, sdcard.PartRootB, 0); got != root {
			t.Error("root partition of slot B was written")
		}
	}
}

// freePort returns a TCP port on the loopback that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something listens on the loopback port.
func waitPort(t testing.TB, port int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}
