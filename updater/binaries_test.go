package updater_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/release"
)

var powerCuts = flag.Int("powercuts", 50, "how many times TestPowerCut kills ota-updater update")

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds the project's commands once per test run.
func binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "ota-bin-")
		if binErr != nil {
			return
		}
		for name, pkg := range map[string]string{
			"ota-updater": "./cmd/ota-updater", "bootctl": "../bootctl/cmd/bootctl", "pisim": "../rpi/cmd/pisim",
			"imagebuilder": "../imagebuilder/cmd/imagebuilder", "manifest-server": "../manifest-server/cmd/manifest-server",
		} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg).CombinedOutput()
			if err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestDemo runs the README's main job, scripts/demo.sh, which checks every
// step itself: flash 1.0.0, update to 2.0.0 and commit it, then fail the
// health check of 3.0.0 and roll back, with the manifest server watching.
func TestDemo(t *testing.T) {
	requireTools(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: the demo checks JSON with it")
	}
	bin := binaries(t)
	cmd := exec.Command("bash", "../scripts/demo.sh", filepath.Join(t.TempDir(), "demo"))
	cmd.Env = append(os.Environ(), "BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestPowerCut kills `ota-updater update` at random points of its progress
// (SIGKILL stands for the power cut) and then cuts the virtual Pi's power.
// After each cut the Pi must boot a slot whose root verifies against its
// ota-slot.json, and re-running update must finish with slot B's root and
// boot partitions identical to those of a clean install (F1, F6).
// -powercuts N sets the number of cuts (default 50).
func TestPowerCut(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux")
	}
	w := newWorld(t)
	bin := binaries(t)
	m := w.publish(t, "2.0.0", 2)

	run := func(d *pisim.Device, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, "ota-updater"), append([]string{"--root", d.Root(), "--server", w.srv.URL}, args...)...)
		return cmd
	}
	// A clean install gives the reference, and how long an update takes.
	ref := w.device(t)
	start := time.Now()
	if out, err := run(ref, "update").CombinedOutput(); err != nil {
		t.Fatalf("clean update: %v\n%s", err, out)
	}
	full := time.Since(start)
	wantRoot, wantBoot := partHash(t, ref, sdcard.PartRootB, 0), partHash(t, ref, sdcard.PartBootB, 0)
	if got := partHash(t, ref, sdcard.PartRootB, m.Rootfs.Size); got != m.Rootfs.SHA256 {
		t.Fatal("clean install: root image differs from the signed one")
	}
	t.Logf("a clean update takes %v", full)

	d := w.device(t)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var killedEarly, completed int
	for i := 0; i < *powerCuts; i++ {
		delay := time.Duration(rng.Int64N(int64(full)))
		cmd := run(d, "update")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			completed++
			if err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
			}
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killedEarly++
		}
		// The power cut, then the boot-time confirmer.
		b, err := d.PowerCut()
		if err != nil {
			t.Fatalf("cut %d at %v: the virtual Pi does not boot: %v", i, delay, err)
		}
		st := bootStatus(t, d)
		booted := st.Slot(st.Booted)
		if booted.Empty || b.Slot != string(st.Booted) {
			t.Fatalf("cut %d at %v: booted %+v", i, delay, st)
		}
		verifySlot(t, d, st.Booted)
		out, err := run(d, "confirm").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "rolled back") {
			t.Fatalf("cut %d: confirm: %v\n%s", i, err, out)
		}
		// Re-running update finishes with the clean install's bytes.
		if out, err := run(d, "update").CombinedOutput(); err != nil {
			t.Fatalf("cut %d at %v: re-run of update: %v\n%s", i, delay, err, out)
		}
		if got := partHash(t, d, sdcard.PartRootB, 0); got != wantRoot {
			t.Fatalf("cut %d at %v: slot B root differs from a clean install", i, delay)
		}
		if got := partHash(t, d, sdcard.PartBootB, 0); got != wantBoot {
			t.Fatalf("cut %d at %v: slot B boot differs from a clean install", i, delay)
		}
		if _, err := d.PowerCut(); err != nil {
			t.Fatal(err)
		}
		run(d, "confirm").Run()
	}
	t.Logf("%d cuts: %d during the update, %d after it finished", *powerCuts, killedEarly, completed)
}

// verifySlot checks that the booted slot's root partition hashes to what
// its ota-slot.json says.
func verifySlot(t *testing.T, d *pisim.Device, s sdcard.Slot) {
	t.Helper()
	c, err := sdcard.Open(d.Image(), false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.ReadFile(s.BootPartition(), sdcard.SlotInfoFile, 4096)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	info, err := sdcard.ParseSlotInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := partHash(t, d, s.RootPartition(), info.RootSize); got != info.RootSHA256 {
		t.Fatalf("slot %s root does not verify against its ota-slot.json", s)
	}
}

// TestNginx: the same update works when the repository is served by nginx,
// a plain static web server, instead of manifest-server.
func TestNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx"} {
			if _, err2 := os.Stat(p); err2 == nil {
				nginx, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("nginx not found (Debian package nginx-light)")
	}
	w := newWorld(t)
	w.publish(t, "2.0.0", 2, release.HealthCheck{Kind: release.CheckCommand, Command: []string{"true"}})
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	types { application/json json; }
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:%[2]d;
		root %[3]s;
	}
}
`, dir, port, w.repo)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := exec.CommandContext(ctx, nginx, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	if out, err := exec.Command(nginx, "-t", "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	defer srv.Process.Signal(syscall.SIGQUIT)
	waitPort(t, port)

	d := w.device(t)
	u := w.updater(t, d, func(c *updater.Config) { c.Server = fmt.Sprintf("http://127.0.0.1:%d", port) })
	if _, err := u.Update(ctx, updater.UpdateOptions{}); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("update from nginx: %v\n%s", err, b)
	}
	if cr, err := u.Confirm(ctx); err != nil || cr.Outcome != "committed" {
		t.Fatalf("confirm: %+v %v", cr, err)
	}
	if st := bootStatus(t, d); st.Committed != sdcard.SlotB || st.Slot(sdcard.SlotB).Version != "2.0.0" {
		t.Fatalf("after the update from nginx: %+v", st)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	if !strings.Contains(string(log), "rootfs.ext4.xz") {
		t.Fatalf("nginx served no payload:\n%s", log)
	}
}
