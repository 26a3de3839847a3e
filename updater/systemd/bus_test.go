package systemd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// The real systemd and logind cannot run in a test, but the real bus can: these tests
// start a private dbus-daemon, point DBUS_SYSTEM_BUS_ADDRESS at it and serve the
// few methods of org.freedesktop.systemd1 and org.freedesktop.login1 this package
// calls, with the same names, signatures, errors and JobRemoved signals.

// startBus runs a private dbus-daemon and makes it the system bus of this test.
func startBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon not installed (Debian package dbus-daemon): skipping the D-Bus tests")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	err = os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon said:\n%s", stderr.Bytes())
		}
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon did not print its address: %v", err)
	}
	addr = strings.TrimSpace(addr)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	return addr
}

// fakeSystemd serves org.freedesktop.systemd1.Manager's StartUnit and StopUnit and
// the ActiveState property of its units, and optionally logind's Reboot.
type fakeSystemd struct {
	conn *dbus.Conn

	mu     sync.Mutex
	units  map[string]string // unit -> ActiveState; absent units are NoSuchUnit
	result map[string]string // unit -> stop job result; "" = "done", "never" = none
	calls  []string
	jobs   int
}

func newFakeSystemd(t *testing.T, addr string, units map[string]string, logind bool) *fakeSystemd {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeSystemd{conn: conn, units: units, result: map[string]string{}}
	if err := conn.Export(manager{f}, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	for u := range units {
		path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sddbus.PathBusEscape(u))
		if err := conn.Export(unitProps{f, u}, path, "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"org.freedesktop.systemd1"}
	if logind {
		if err := conn.Export(login{f}, "/org/freedesktop/login1", "org.freedesktop.login1.Manager"); err != nil {
			t.Fatal(err)
		}
		names = append(names, "org.freedesktop.login1")
	}
	for _, n := range names {
		reply, err := conn.RequestName(n, dbus.NameFlagDoNotQueue)
		if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("own %s: %v, %v", n, reply, err)
		}
	}
	return f
}

func (f *fakeSystemd) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeSystemd) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type manager struct{ f *fakeSystemd }

func (m manager) job(unit, result string) dbus.ObjectPath {
	m.f.mu.Lock()
	m.f.jobs++
	id := uint32(m.f.jobs)
	m.f.mu.Unlock()
	path := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	if result != "never" {
		go func() {
			time.Sleep(10 * time.Millisecond)
			m.f.conn.Emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", id, path, unit, result)
		}()
	}
	return path
}

func (m manager) StopUnit(unit, mode string) (dbus.ObjectPath, *dbus.Error) {
	m.f.record("StopUnit " + unit + " " + mode)
	m.f.mu.Lock()
	_, known := m.f.units[unit]
	result := m.f.result[unit]
	if known && result == "" {
		m.f.units[unit] = "inactive"
	}
	m.f.mu.Unlock()
	if !known {
		return "", dbus.NewError(errNoSuchUnit, []any{"Unit " + unit + " not loaded."})
	}
	if result == "" {
		result = "done"
	}
	return m.job(unit, result), nil
}

func (m manager) StartUnit(unit, mode string) (dbus.ObjectPath, *dbus.Error) {
	m.f.record("StartUnit " + unit + " " + mode)
	return m.job(unit, "done"), nil
}

type unitProps struct {
	f    *fakeSystemd
	unit string
}

func (u unitProps) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	if iface != "org.freedesktop.systemd1.Unit" || prop != "ActiveState" {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{iface + "." + prop})
	}
	u.f.mu.Lock()
	defer u.f.mu.Unlock()
	return dbus.MakeVariant(u.f.units[u.unit]), nil
}

type login struct{ f *fakeSystemd }

func (l login) Reboot(interactive bool) *dbus.Error {
	l.f.record(fmt.Sprintf("logind Reboot %v", interactive))
	return nil
}

func TestUnitActive(t *testing.T) {
	addr := startBus(t)
	newFakeSystemd(t, addr, map[string]string{"app.service": "active", "db.service": "activating"}, false)
	ctx := context.Background()
	for _, tt := range []struct {
		unit   string
		active bool
		state  string
	}{
		{"app.service", true, "active"},
		{"db.service", false, "activating"},
	} {
		active, state, err := UnitActive(ctx, tt.unit)
		if err != nil || active != tt.active || state != tt.state {
			t.Errorf("UnitActive(%s) = %v, %q, %v; want %v, %q, nil", tt.unit, active, state, err, tt.active, tt.state)
		}
	}
	if _, _, err := UnitActive(ctx, "gone.service"); err == nil || !strings.Contains(err.Error(), "gone.service") {
		t.Errorf("UnitActive of an object nobody serves: error %v, want one naming gone.service", err)
	}
}

func TestStopUnits(t *testing.T) {
	addr := startBus(t)
	f := newFakeSystemd(t, addr, map[string]string{"app.service": "active", "db.service": "active", "stuck.service": "active", "bad.service": "active"}, false)
	f.mu.Lock() // the bus handlers read it on their own goroutines
	f.result["stuck.service"] = "never"
	f.result["bad.service"] = "failed"
	f.mu.Unlock()

	if err := StopUnits(context.Background(), []string{"app.service", "unknown.service", "db.service"}, 5*time.Second); err != nil {
		t.Fatalf("StopUnits: %v", err)
	}
	want := []string{"StopUnit app.service replace", "StopUnit unknown.service replace", "StopUnit db.service replace"}
	if got := f.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls: got %q, want %q", got, want)
	}
	if _, state, _ := UnitActive(context.Background(), "app.service"); state != "inactive" {
		t.Errorf("app.service after StopUnits is %q, want inactive", state)
	}

	start := time.Now()
	err := StopUnits(context.Background(), []string{"stuck.service", "bad.service"}, 300*time.Millisecond)
	if err == nil {
		t.Fatal("StopUnits of a unit that never stops: no error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("StopUnits took %v with a 300ms timeout", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	for _, s := range []string{"stop stuck.service:", "stop bad.service: job failed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}

	if err := StopUnits(context.Background(), nil, time.Second); err != nil {
		t.Errorf("StopUnits(nil) = %v", err)
	}
}

func TestRebootThroughLogind(t *testing.T) {
	addr := startBus(t)
	f := newFakeSystemd(t, addr, map[string]string{}, true)
	param := filepath.Join(t.TempDir(), "run", "systemd", "reboot-param")
	defer func(old string) { rebootParamFile = old }(rebootParamFile)
	rebootParamFile = param

	if err := Reboot(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(param)
	if want := "0 tryboot\n"; err != nil || string(got) != want {
		t.Errorf("reboot-param after Reboot(tryboot) = %q, %v; want %q", got, err, want)
	}
	if err := Reboot(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(param); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reboot-param after a plain Reboot: %v, want it removed", err)
	}
	want := []string{"logind Reboot false", "logind Reboot false"}
	if got := f.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls: got %q, want %q", got, want)
	}
}

func TestRebootWithoutLogind(t *testing.T) {
	addr := startBus(t)
	f := newFakeSystemd(t, addr, map[string]string{}, false)
	defer func(old string) { rebootParamFile = old }(rebootParamFile)
	rebootParamFile = filepath.Join(t.TempDir(), "reboot-param")

	if err := Reboot(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	want := []string{"StartUnit reboot.target replace-irreversibly"}
	if got := f.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls: got %q, want %q", got, want)
	}
}

func TestRebootWithoutBus(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	defer func(old string) { rebootParamFile = old }(rebootParamFile)
	rebootParamFile = filepath.Join(t.TempDir(), "reboot-param")

	if err := Reboot(context.Background(), true); err == nil {
		t.Fatal("Reboot without a bus: no error")
	}
	if _, err := os.Stat(rebootParamFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reboot-param after a failed Reboot(tryboot): %v, want it removed", err)
	}
}

func TestSetRebootParam(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "reboot-param")
	if err := setRebootParam(path, false); err != nil {
		t.Errorf("clearing a missing parameter: %v", err)
	}
	if err := os.WriteFile(path, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := setRebootParam(path, true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o644); got != want {
		t.Errorf("mode: got %v, want %v", got, want)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "0 tryboot\n" {
		t.Errorf("content: got %q, want %q", got, "0 tryboot\n")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only reboot-param (no temporary files)", len(entries))
	}
	if err := setRebootParam(path, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after clearing: %v, want no file", err)
	}
}
