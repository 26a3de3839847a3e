package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/healthguard/gateway-ota/updater/release"
)

// unitDir holds the unit files the image installs.
const unitDir = "../../scripts/systemd"

// readUnit parses a unit file into section -> key -> values.
func readUnit(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(unitDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m := map[string]map[string][]string{}
	for _, o := range opts {
		if m[o.Section] == nil {
			m[o.Section] = map[string][]string{}
		}
		m[o.Section][o.Name] = append(m[o.Section][o.Name], o.Value)
	}
	return m
}

// span parses the systemd time spans these files use: "60", "30s", "2min", "65min".
func span(t *testing.T, s string) time.Duration {
	t.Helper()
	v := strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(v, "min"):
		v = strings.TrimSuffix(v, "in")
	case strings.TrimLeft(v, "0123456789") == "":
		v += "s"
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d
}

func one(t *testing.T, u map[string]map[string][]string, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s is set %d times, want once", section, key, len(v))
	}
	return v[0]
}

func words(u map[string]map[string][]string, section, key string) map[string]bool {
	set := map[string]bool{}
	for _, v := range u[section][key] {
		for _, w := range strings.Fields(v) {
			set[w] = true
		}
	}
	return set
}

// TestUpdaterUnit pins the facts other parts rely on: the daemon notifies, is
// watched, restarts, runs after the confirmer and may write what an update writes.
func TestUpdaterUnit(t *testing.T) {
	u := readUnit(t, "ota-updater.service")
	for _, c := range []struct{ section, key, want string }{
		{"Service", "Type", "notify"},
		{"Service", "ExecStart", "/usr/bin/ota-updater run"},
		{"Service", "Restart", "on-failure"},
		{"Service", "ProtectSystem", "strict"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := one(t, u, c.section, c.key); got != c.want {
			t.Errorf("[%s] %s = %q, want %q", c.section, c.key, got, c.want)
		}
	}
	if got := span(t, one(t, u, "Service", "WatchdogSec")); got != time.Minute {
		t.Errorf("WatchdogSec = %v, want 1m (the daemon pings every 30s)", got)
	}
	after := words(u, "Unit", "After")
	for _, w := range []string{"ota-confirm.service", "network-online.target"} {
		if !after[w] {
			t.Errorf("After= lacks %s", w)
		}
	}
	if !words(u, "Unit", "Wants")["network-online.target"] {
		t.Error("Wants= lacks network-online.target")
	}
	rw := words(u, "Service", "ReadWritePaths")
	for _, p := range []string{"/data", "/run"} {
		if !rw[p] {
			t.Errorf("ReadWritePaths lacks %s", p)
		}
	}
	// Each of these would hide /dev/mmcblk0 from the updater.
	for _, k := range []string{"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"} {
		if v := u["Service"][k]; len(v) > 0 {
			t.Errorf("%s=%q restricts device access; the updater writes the card", k, v)
		}
	}
}

// TestConfirmUnit pins the confirmer's contract: it judges every trial within the
// longest deadline a release can sign, and a failure leaves the trial.
func TestConfirmUnit(t *testing.T) {
	u := readUnit(t, "ota-confirm.service")
	for _, c := range []struct{ section, key, want string }{
		{"Service", "Type", "oneshot"},
		{"Service", "ExecStart", "/usr/bin/ota-updater confirm"},
		{"Unit", "FailureAction", "reboot"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := one(t, u, c.section, c.key); got != c.want {
			t.Errorf("[%s] %s = %q, want %q", c.section, c.key, got, c.want)
		}
	}
	after := words(u, "Unit", "After")
	for _, w := range []string{"local-fs.target", "data.mount"} {
		if !after[w] {
			t.Errorf("After= lacks %s", w)
		}
	}
	timeout := span(t, one(t, u, "Service", "TimeoutStartSec"))
	if timeout <= release.MaxHealthDeadline {
		t.Errorf("TimeoutStartSec = %v, want more than the longest health deadline %v", timeout, release.MaxHealthDeadline)
	}
	if timeout > release.MaxHealthDeadline+15*time.Minute {
		t.Errorf("TimeoutStartSec = %v leaves a hung confirmer on trial too long", timeout)
	}
}

// TestWatchdogConfig pins the hardware watchdog settings of docs/tryboot.md.
func TestWatchdogConfig(t *testing.T) {
	u := readUnit(t, "system.conf.d/10-ota-watchdog.conf")
	if len(u) != 1 || u["Manager"] == nil {
		t.Fatalf("sections %v, want only [Manager]", u)
	}
	rt := span(t, one(t, u, "Manager", "RuntimeWatchdogSec"))
	if rt <= 0 || rt > 15*time.Second {
		t.Errorf("RuntimeWatchdogSec = %v, want 1s..15s (the bcm2835 maximum)", rt)
	}
	rb := span(t, one(t, u, "Manager", "RebootWatchdogSec"))
	if rb <= 0 || rb > 10*time.Minute {
		t.Errorf("RebootWatchdogSec = %v, want it on and at most systemd's default 10min", rb)
	}
}

// TestVerifyUnits runs systemd's own checker over the unit files. It needs the
// ExecStart binary to exist, so it checks copies whose /usr/bin/ota-updater points
// at a stand-in, and it fails on any warning, since systemd-analyze verify exits 0
// on settings it ignores.
func TestVerifyUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): skipping unit verification")
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "ota-updater")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--man=no"}
	for _, name := range []string{"ota-updater.service", "ota-confirm.service"} {
		b, err := os.ReadFile(filepath.Join(unitDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("/usr/bin/ota-updater ")) {
			t.Fatalf("%s does not run /usr/bin/ota-updater", name)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/bin/ota-updater "), []byte(stub+" "))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.Command(analyze, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	err = cmd.Run()
	if out := strings.TrimSpace(stderr.String()); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
