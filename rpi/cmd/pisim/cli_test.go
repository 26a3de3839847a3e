package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/pisim/pisimtest"
)

// pisimCmd runs the command in process.
func pisimCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"boot"},
		{"boot", "a", "b"},
		{"create", "dev"},
		{"create", "dev", "--image", "x", "--boot-mode", "floppy"},
		{"create", "dev", "--image", "x", "--eeprom", "yesterday"},
		{"reboot", "--nope", "dev"},
		{"mailbox", "dev", "explode"},
	} {
		if _, stderr, code := pisimCmd(t, args...); code != exitUsage {
			t.Errorf("pisim %v: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr)
		}
	}
	if _, _, code := pisimCmd(t, "boot", filepath.Join(t.TempDir(), "nothing")); code != exitError {
		t.Errorf("boot of a missing device: exit %d, want %d", code, exitError)
	}
}

func TestHelpDocumentsTheDevice(t *testing.T) {
	out, _, code := pisimCmd(t, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"DEVICE/sdcard.img", "dev/mmcblk0", "firmware/state.json", "firmware/boot.log",
		"chosen/bootloader", "proc/cmdline", "run/systemd/reboot-param", "DEVICE/data/", "3 the device is bricked"} {
		if !strings.Contains(out, want) {
			t.Errorf("pisim --help does not mention %q", want)
		}
	}
}

func TestInProcess(t *testing.T) {
	pisimtest.RequireTools(t)
	img := pisimtest.Default(t).Build(t)
	dev := filepath.Join(t.TempDir(), "pi")
	if _, stderr, code := pisimCmd(t, "create", dev, "--image", img, "--model", "pi5", "--eeprom", "2024-01-10"); code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	if out, _, code := pisimCmd(t, "boot", dev); code != 0 || !strings.Contains(out, "partition=2 (reported as 0) slot A") {
		t.Errorf("boot of an old Pi 5: exit %d, %q", code, out)
	}
	if out, _, code := pisimCmd(t, "mailbox", dev, "arm"); code != 0 || out != "tryboot flag set\n" {
		t.Errorf("mailbox arm: exit %d, %q", code, out)
	}
	if out, _, _ := pisimCmd(t, "status", dev); !strings.Contains(out, "pending: tryboot on the next reboot (mailbox flag)") {
		t.Errorf("status after arming the mailbox:\n%s", out)
	}
	out, _, code := pisimCmd(t, "reboot", dev, "--json")
	var b pisim.Boot
	if err := json.Unmarshal([]byte(out), &b); err != nil || code != 0 {
		t.Fatalf("reboot --json: exit %d, %v:\n%s", code, err, out)
	}
	if b.Partition != 3 || !b.Tryboot || b.ReportedPartition != 0 || b.Slot != "B" {
		t.Errorf("reboot --json: %+v", b)
	}
}

// TestBinary builds pisim and drives it as a pipeline would: one process
// per step, the OS side simulated by writing the reboot parameter.
func TestBinary(t *testing.T) {
	pisimtest.RequireTools(t)
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found, cannot build pisim: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pisim")
	if out, err := exec.Command(gotool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pisimBin := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String() + e.String(), code
	}
	img := pisimtest.Default(t).Build(t)
	dev := filepath.Join(t.TempDir(), "pi")
	if out, code := pisimBin("create", dev, "--image", img); code != 0 {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	steps := []struct {
		args []string
		arm  bool // write run/systemd/reboot-param first, as the updater does
		want string
		code int
	}{
		{args: []string{"boot", dev}, want: "boot 1 (power-on): tryboot=0 partition=2 slot A root=PARTUUID=1234abcd-05\n"},
		{args: []string{"reboot", dev}, arm: true, want: "boot 2 (reboot): tryboot=1 partition=3 slot B root=PARTUUID=1234abcd-06\n"},
		{args: []string{"watchdog", dev}, want: "boot 3 (watchdog): tryboot=0 partition=2 slot A root=PARTUUID=1234abcd-05\n"},
		{args: []string{"reboot", dev}, arm: true, want: "boot 4 (reboot): tryboot=1 partition=3 slot B root=PARTUUID=1234abcd-06\n"},
		{args: []string{"power-cut", dev}, want: "boot 5 (power-cut): tryboot=0 partition=2 slot A root=PARTUUID=1234abcd-05\n"},
		{args: []string{"power-off", dev}, want: ""},
		{args: []string{"reboot", dev}, want: "pisim: reboot: device is not running (power off)\n", code: exitError},
		{args: []string{"boot", dev}, want: "boot 6 (power-on): tryboot=0 partition=2 slot A root=PARTUUID=1234abcd-05\n"},
	}
	for i, s := range steps {
		if s.arm {
			if err := (rpi.RebootParam{Path: filepath.Join(dev, rpi.RebootParamFile)}).Arm(); err != nil {
				t.Fatal(err)
			}
			if out, _ := pisimBin("status", dev); !strings.Contains(out, `pending: tryboot on the next reboot (reboot-param "0 tryboot")`) {
				t.Errorf("step %d: status after arming:\n%s", i, out)
			}
		}
		out, code := pisimBin(s.args...)
		if out != s.want || code != s.code {
			t.Errorf("step %d: pisim %v: exit %d, output %q; want exit %d, %q", i, s.args, code, out, s.code, s.want)
		}
	}
	out, code := pisimBin("log", dev)
	if lines := strings.Count(out, "\n"); code != 0 || lines != 6 {
		t.Errorf("log: exit %d, %d lines, want 6:\n%s", code, lines, out)
	}
	out, _ = pisimBin("status", dev, "--json")
	var st pisim.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Power != pisim.PowerRunning || st.BootCounter != 6 || st.LastBoot == nil || st.LastBoot.Slot != "A" {
		t.Errorf("status --json: %+v", st)
	}

	// A card that boots nothing: exit code 3, every time.
	c := pisimtest.Default(t)
	c.BootA, c.BootB = nil, nil
	dead := filepath.Join(t.TempDir(), "dead")
	if out, code := pisimBin("create", dead, "--image", c.Build(t), "--move"); code != 0 {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	for _, cmd := range []string{"boot", "power-cut"} {
		out, code := pisimBin(cmd, dead)
		if code != exitBricked || !strings.Contains(out, "bricked") {
			t.Errorf("%s of a card without boot files: exit %d, %q; want %d and bricked", cmd, code, out, exitBricked)
		}
	}
	if out, _ := pisimBin("status", dead); !strings.Contains(out, "power:   bricked") {
		t.Errorf("status of a bricked device:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dead, "sdcard.img")); err != nil {
		t.Error(err)
	}
}
