package pisim_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/pisim/pisimtest"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// step is one action on a device and what must come of it.
type step struct {
	do string // power-on, reboot, power-cut, watchdog, power-off, arm-param, arm-param:<text>, arm-mailbox
	// want, for boots:
	part     int  // booted partition; 0: the boot must fail as bricked
	tryboot  bool // flag the system runs with
	attempts int  // 0: don't check
	// reportsZero: chosen/bootloader/partition reads 0, not part.
	reportsZero bool
	noteHas     string // a note of some attempt must contain this
	reasonHas   string // the first attempt's reason must contain this
	autoboot    string // the first attempt's autoboot outcome must start with this
}

func newDevice(t *testing.T, card pisimtest.Card, opts pisim.Options) *pisim.Device {
	t.Helper()
	img := card.Build(t)
	d, err := pisim.Create(filepath.Join(t.TempDir(), "device"), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBoot(t *testing.T) {
	pisimtest.RequireTools(t)
	def := func() pisimtest.Card { return pisimtest.Default(t) }
	tests := []struct {
		name    string
		card    func() pisimtest.Card
		opts    pisim.Options
		prepare func(t *testing.T, img string) // changes the device's image
		steps   []step
	}{
		{
			name:  "normal boot of A",
			card:  def,
			steps: []step{{do: "power-on", part: 2, attempts: 1, autoboot: "ok: [all] boot_partition=2, [tryboot] boot_partition=3, tryboot_a_b=1"}},
		},
		{
			name: "reboot-param tryboot: trial of B, then back to A",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true, attempts: 1},
				{do: "reboot", part: 2},
			},
		},
		{
			name: "reboot argument without the leading space sets no flag",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param:tryboot"},
				{do: "reboot", part: 2, tryboot: false},
			},
		},
		{
			name: "partition number in the reboot argument overrides autoboot.txt",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param:3"},
				{do: "reboot", part: 3, tryboot: false},
				{do: "reboot", part: 2},
			},
		},
		{
			name: "mailbox flag survives an orderly reboot",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-mailbox"},
				{do: "reboot", part: 3, tryboot: true},
				{do: "reboot", part: 2, tryboot: false},
			},
		},
		{
			name: "mailbox flag is lost in a power cut",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-mailbox"},
				{do: "power-cut", part: 2, tryboot: false},
				{do: "reboot", part: 2, tryboot: false},
			},
		},
		{
			name: "reboot-param is ignored by a power cut",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "power-cut", part: 2},
				{do: "reboot", part: 2},
			},
		},
		{
			name: "watchdog bite during the trial returns to A",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true},
				{do: "watchdog", part: 2, tryboot: false},
			},
		},
		{
			name: "quick power cuts never switch slots",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "power-cut", part: 2},
				{do: "arm-mailbox"},
				{do: "power-cut", part: 2},
				{do: "power-cut", part: 2},
				{do: "power-on", part: 2},
				{do: "watchdog", part: 2},
				{do: "reboot", part: 2},
			},
		},
		{
			name: "power-off then power-on boots A",
			card: def,
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-mailbox"},
				{do: "power-off"},
				{do: "power-on", part: 2},
			},
		},
		{
			name: "missing autoboot.txt: partition walk",
			card: func() pisimtest.Card { c := def(); c.Autoboot = nil; return c },
			steps: []step{
				{do: "power-on", part: 2, autoboot: "missing"},
				{do: "arm-param"},
				{do: "reboot", part: 2, tryboot: true},
			},
		},
		{
			name:  "missing autoboot.txt and empty boot A: the walk finds B",
			card:  func() pisimtest.Card { c := def(); c.Autoboot = nil; c.BootA = nil; return c },
			steps: []step{{do: "power-on", part: 3, autoboot: "missing"}},
		},
		{
			name:  "corrupt autoboot.txt: partition walk",
			card:  func() pisimtest.Card { c := def(); c.Autoboot = []byte("[all\nboot_partition=3\n"); return c },
			steps: []step{{do: "power-on", part: 2, autoboot: "invalid"}},
		},
		{
			name: "oversize autoboot.txt: partition walk",
			card: func() pisimtest.Card {
				c := def()
				c.Autoboot = append([]byte("[all]\nboot_partition=3\n"), bytes.Repeat([]byte("#"), 600)...)
				return c
			},
			steps: []step{{do: "power-on", part: 2, autoboot: "oversize"}},
		},
		{
			name:  "autoboot partition not FAT: partition walk",
			card:  func() pisimtest.Card { c := def(); c.Unformatted = []int{1}; return c },
			steps: []step{{do: "power-on", part: 2, autoboot: "unreadable"}},
		},
		{
			name: "empty trial partition: retry without the flag boots the committed one",
			card: func() pisimtest.Card { c := def(); c.BootB = nil; return c },
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 2, tryboot: false, attempts: 2, reasonHas: "partition 3 has no cmdline.txt"},
			},
		},
		{
			name: "trial cmdline names a blank root: kernel panic, back to the committed slot",
			card: func() pisimtest.Card { c := def(); c.RootB = false; return c },
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 2, tryboot: false, attempts: 2, reasonHas: "no ext4 superblock"},
			},
		},
		{
			name: "trial cmdline names another disk: kernel panic",
			card: func() pisimtest.Card {
				c := def()
				c.BootB = pisimtest.BootFiles(sdcard.SlotB, 0xdeadbeef, "2.0.0")
				return c
			},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 2, attempts: 2, reasonHas: "PARTUUID deadbeef-06"},
			},
		},
		{
			name: "panic without panic=N is noted",
			card: func() pisimtest.Card {
				c := def()
				c.BootB["cmdline.txt"] = []byte("root=/dev/mmcblk0p9 rootwait\n")
				return c
			},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 2, attempts: 2, noteHas: "no panic=N", reasonHas: "no partition 9"},
			},
		},
		{
			name: "root given as a device name",
			card: func() pisimtest.Card {
				c := def()
				c.BootB["cmdline.txt"] = []byte("console=tty1 root=/dev/mmcblk0p6 ro\n")
				return c
			},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true},
			},
		},
		{
			name: "USB boot: root=/dev/sda6",
			card: func() pisimtest.Card {
				c := def()
				c.BootB["cmdline.txt"] = []byte("root=/dev/sda6 panic=10\n")
				return c
			},
			opts: pisim.Options{BootMode: rpi.BootModeUSBMSD},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true},
			},
		},
		{
			name: "Pi 5 with an EEPROM before 2024-05-13 reports partition 0",
			card: def,
			opts: pisim.Options{Model: "pi5", EEPROM: time.Date(2024, 4, 20, 0, 0, 0, 0, time.UTC)},
			steps: []step{
				{do: "power-on", part: 2, reportsZero: true},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true, reportsZero: true},
			},
		},
		{
			name: "Pi 5 with a current EEPROM reports the partition",
			card: def,
			opts: pisim.Options{Model: "pi5"},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true},
			},
		},
		{
			name: "Pi 4 with an EEPROM before 2022-11-25 ignores [tryboot]",
			card: def,
			opts: pisim.Options{EEPROM: time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC)},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 2, tryboot: true, noteHas: "ignores [tryboot]"},
			},
		},
		{
			name: "[tryboot] without the flag is ignored",
			card: func() pisimtest.Card {
				c := def()
				c.Autoboot = []byte("[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n")
				return c
			},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "power-cut", part: 2},
				{do: "reboot", part: 2},
			},
		},
		{
			name: "no tryboot_a_b: [tryboot] applies, with a note",
			card: func() pisimtest.Card {
				c := def()
				c.Autoboot = []byte("[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n")
				return c
			},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true, noteHas: "tryboot_a_b is not set"},
			},
		},
		{
			name:  "no bootable partition: bricked",
			card:  func() pisimtest.Card { c := def(); c.BootA, c.BootB = nil, nil; return c },
			steps: []step{{do: "power-on", part: 0, reasonHas: "partition 2 has no cmdline.txt"}},
		},
		{
			name:    "no partition table: bricked",
			card:    def,
			prepare: wipeTable,
			steps:   []step{{do: "power-on", part: 0, reasonHas: "no MBR partition table"}},
		},
		{
			name: "committed partition unbootable: bricked, even with a bootable trial partition",
			card: func() pisimtest.Card { c := def(); c.BootA = nil; return c },
			steps: []step{
				{do: "power-on", part: 0},
				{do: "power-cut", part: 0},
			},
		},
		{
			name:  "Pi 3 without bootcode.bin: bricked",
			card:  def,
			opts:  pisim.Options{Model: "pi3"},
			steps: []step{{do: "power-on", part: 0, reasonHas: "bootcode.bin"}},
		},
		{
			name: "Pi 3 with bootcode.bin on the autoboot partition",
			card: func() pisimtest.Card {
				c := def()
				c.AutobootFiles = map[string][]byte{"bootcode.bin": []byte("bootcode")}
				return c
			},
			opts: pisim.Options{Model: "pi3"},
			steps: []step{
				{do: "power-on", part: 2},
				{do: "arm-param"},
				{do: "reboot", part: 3, tryboot: true},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, tc.card(), tc.opts)
			if tc.prepare != nil {
				tc.prepare(t, d.Image())
			}
			for i, s := range tc.steps {
				runStep(t, d, i, s)
			}
		})
	}
}

func wipeTable(t *testing.T, img string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
}

func runStep(t *testing.T, d *pisim.Device, i int, s step) {
	t.Helper()
	var b pisim.Boot
	var err error
	switch {
	case s.do == "power-on":
		b, err = d.PowerOn()
	case s.do == "reboot":
		b, err = d.Reboot()
	case s.do == "power-cut":
		b, err = d.PowerCut()
	case s.do == "watchdog":
		b, err = d.Watchdog()
	case s.do == "power-off":
		if err := d.PowerOff(); err != nil {
			t.Fatalf("step %d: power-off: %v", i, err)
		}
		return
	case s.do == "arm-mailbox":
		if err := d.Mailbox().Arm(); err != nil {
			t.Fatalf("step %d: arm mailbox: %v", i, err)
		}
		if got, err := d.Mailbox().Armed(); err != nil || !got {
			t.Fatalf("step %d: mailbox Armed() = %v, %v; want true", i, got, err)
		}
		return
	case s.do == "arm-param":
		if err := (rpi.RebootParam{Path: filepath.Join(d.Root(), rpi.RebootParamFile)}).Arm(); err != nil {
			t.Fatalf("step %d: arm: %v", i, err)
		}
		return
	case strings.HasPrefix(s.do, "arm-param:"):
		p := filepath.Join(d.Root(), rpi.RebootParamFile)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.TrimPrefix(s.do, "arm-param:")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	default:
		t.Fatalf("step %d: unknown action %q", i, s.do)
	}
	st, serr := d.State()
	if serr != nil {
		t.Fatal(serr)
	}
	if st.TrybootFlag {
		t.Errorf("step %d %s: mailbox flag still set after the boot", i, s.do)
	}
	if _, perr := os.Stat(filepath.Join(d.Root(), rpi.RebootParamFile)); perr == nil {
		t.Errorf("step %d %s: run/ not emptied: reboot-param survived", i, s.do)
	}
	if len(b.Attempts) > 0 && s.reasonHas != "" && !strings.Contains(b.Attempts[0].Reason, s.reasonHas) {
		t.Errorf("step %d %s: first attempt reason = %q, want it to contain %q", i, s.do, b.Attempts[0].Reason, s.reasonHas)
	}
	if len(b.Attempts) > 0 && !strings.HasPrefix(b.Attempts[0].Autoboot, s.autoboot) {
		t.Errorf("step %d %s: autoboot outcome %q, want %q...", i, s.do, b.Attempts[0].Autoboot, s.autoboot)
	}
	if s.noteHas != "" {
		found := false
		for _, a := range b.Attempts {
			found = found || strings.Contains(strings.Join(a.Notes, "\n"), s.noteHas)
		}
		if !found {
			t.Errorf("step %d %s: no note contains %q in %+v", i, s.do, s.noteHas, b.Attempts)
		}
	}
	if s.attempts != 0 && len(b.Attempts) != s.attempts {
		t.Errorf("step %d %s: %d attempts, want %d: %+v", i, s.do, len(b.Attempts), s.attempts, b.Attempts)
	}
	if s.part == 0 {
		if !errors.Is(err, pisim.ErrNoBootablePartition) {
			t.Fatalf("step %d %s: err = %v, want ErrNoBootablePartition", i, s.do, err)
		}
		if st.Power != pisim.PowerBricked {
			t.Errorf("step %d %s: power = %s, want bricked", i, s.do, st.Power)
		}
		if _, err := d.Reboot(); !errors.Is(err, pisim.ErrNotRunning) {
			t.Errorf("step %d: reboot of a bricked device: err = %v, want ErrNotRunning", i, err)
		}
		if _, err := os.Stat(filepath.Join(d.Root(), rpi.CmdlineFile)); err == nil {
			t.Errorf("step %d: bricked device shows %s", i, rpi.CmdlineFile)
		}
		return
	}
	if err != nil {
		t.Fatalf("step %d %s: %v (attempts %+v)", i, s.do, err, b.Attempts)
	}
	if b.Partition != s.part || b.Tryboot != s.tryboot {
		t.Fatalf("step %d %s: booted partition %d tryboot %v, want %d %v (attempts %+v)", i, s.do, b.Partition, b.Tryboot, s.part, s.tryboot, b.Attempts)
	}
	wantSlot := map[int]string{2: "A", 3: "B"}[s.part]
	if b.Slot != wantSlot {
		t.Errorf("step %d: slot %q, want %q", i, b.Slot, wantSlot)
	}
	if st.Power != pisim.PowerRunning || st.LastBoot == nil || st.LastBoot.Counter != b.Counter {
		t.Errorf("step %d: state after boot: power %s, last boot %+v", i, st.Power, st.LastBoot)
	}
	// What the OS sees, read with the reader the on-device code uses.
	bl, err := rpi.ReadBootloader(d.Root())
	if err != nil {
		t.Fatalf("step %d: %v", i, err)
	}
	if bl.Tryboot != s.tryboot {
		t.Errorf("step %d: chosen/bootloader/tryboot = %v, want %v", i, bl.Tryboot, s.tryboot)
	}
	wantReported := s.part
	if s.reportsZero {
		wantReported = 0
	}
	if bl.Partition != wantReported {
		t.Errorf("step %d: chosen/bootloader/partition = %d, want %d", i, bl.Partition, wantReported)
	}
	cmdline, err := rpi.ReadCmdline(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	if cmdline != b.Cmdline || rpi.CmdlineRoot(cmdline) != b.Root {
		t.Errorf("step %d: /proc/cmdline %q, boot says cmdline %q root %q", i, cmdline, b.Cmdline, b.Root)
	}
	if _, err := rpi.ReadModel(d.Root()); err != nil {
		t.Errorf("step %d: %v", i, err)
	}
}

// TestPresented checks the files the OS reads, byte for byte.
func TestPresented(t *testing.T) {
	pisimtest.RequireTools(t)
	d := newDevice(t, pisimtest.Default(t), pisim.Options{})
	if _, err := d.PowerOn(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"proc/device-tree/model":                             "Raspberry Pi 4 Model B Rev 1.5\x00",
		"proc/device-tree/compatible":                        "raspberrypi,4-model-b\x00brcm,bcm2711\x00",
		"proc/cmdline":                                       pisimtest.Cmdline(sdcard.SlotA, pisimtest.DiskID) + "\n",
		"proc/device-tree/chosen/bootloader/tryboot":         "\x00\x00\x00\x00",
		"proc/device-tree/chosen/bootloader/partition":       "\x00\x00\x00\x02",
		"proc/device-tree/chosen/bootloader/boot-mode":       "\x00\x00\x00\x01",
		"proc/device-tree/chosen/bootloader/capabilities":    "\x00\x00\x00\x04",
		"proc/device-tree/chosen/bootloader/build-timestamp": string([]byte{0x66, 0x5a, 0x64, 0x80}), // 2024-06-01T00:00:00Z
	}
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(d.Root(), name))
		if err != nil {
			t.Error(err)
			continue
		}
		if string(got) != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}
	link, err := os.Readlink(filepath.Join(d.Root(), "dev", "mmcblk0"))
	if err != nil || link != "../sdcard.img" {
		t.Errorf("dev/mmcblk0 -> %q, %v; want ../sdcard.img", link, err)
	}
	// The card opens through the device path, as on-device code opens it.
	disk, err := sdcard.Open(filepath.Join(d.Root(), "dev", "mmcblk0"), false)
	if err != nil {
		t.Fatal(err)
	}
	disk.Close()
	if err := rpi.Preflight(d.Root()); err != nil {
		t.Errorf("preflight on a current Pi 4: %v", err)
	}
}

func TestDataPersistsRunDoesNot(t *testing.T) {
	pisimtest.RequireTools(t)
	d := newDevice(t, pisimtest.Default(t), pisim.Options{})
	if _, err := d.PowerOn(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"data/state.json", "run/marker"} {
		if err := os.WriteFile(filepath.Join(d.Root(), f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "data/state.json")); err != nil {
		t.Errorf("data/ lost a file across a reboot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "run/marker")); err == nil {
		t.Errorf("run/ kept a file across a reboot")
	}
}

func TestPowerStates(t *testing.T) {
	pisimtest.RequireTools(t)
	d := newDevice(t, pisimtest.Default(t), pisim.Options{})
	if _, err := d.Reboot(); !errors.Is(err, pisim.ErrNotRunning) {
		t.Errorf("reboot while off: %v, want ErrNotRunning", err)
	}
	if _, err := d.Watchdog(); !errors.Is(err, pisim.ErrNotRunning) {
		t.Errorf("watchdog while off: %v, want ErrNotRunning", err)
	}
	if err := d.Mailbox().Arm(); !errors.Is(err, pisim.ErrNotRunning) {
		t.Errorf("mailbox while off: %v, want ErrNotRunning", err)
	}
	causes := []string{}
	for _, f := range []func() (pisim.Boot, error){d.PowerOn, d.PowerOn, d.Reboot, d.Watchdog, d.PowerCut} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		causes = append(causes, b.Cause)
	}
	if got, want := strings.Join(causes, " "), "power-on power-cut reboot watchdog power-cut"; got != want {
		t.Errorf("causes %q, want %q", got, want)
	}
	st, err := d.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.BootCounter != 5 {
		t.Errorf("boot counter %d, want 5", st.BootCounter)
	}
	log, err := d.Log()
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 5 || log[4].Boot != 5 || log[4].Cause != "power-cut" {
		t.Errorf("boot log: %+v", log)
	}
	// Opening again from another "process" sees the same device.
	d2, err := pisim.Open(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	if st2, _ := d2.State(); st2.BootCounter != 5 {
		t.Errorf("reopened device: boot counter %d", st2.BootCounter)
	}
	if err := d.PowerOff(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), rpi.CmdlineFile)); err == nil {
		t.Errorf("powered-off device shows %s", rpi.CmdlineFile)
	}
}

func TestStatusPending(t *testing.T) {
	pisimtest.RequireTools(t)
	d := newDevice(t, pisimtest.Default(t), pisim.Options{})
	if _, err := d.PowerOn(); err != nil {
		t.Fatal(err)
	}
	s, err := d.Status()
	if err != nil || s.PendingTryboot {
		t.Fatalf("status before arming: %+v, %v", s, err)
	}
	if err := rpi.DefaultArmer(d.Root()).Arm(); err != nil {
		t.Fatal(err)
	}
	if s, err = d.Status(); err != nil || !s.PendingTryboot || s.RebootParam != rpi.TrybootRebootArgument {
		t.Fatalf("status after arming: %+v, %v", s, err)
	}
	if err := rpi.DefaultArmer(d.Root()).Disarm(); err != nil {
		t.Fatal(err)
	}
	if err := d.Mailbox().Arm(); err != nil {
		t.Fatal(err)
	}
	if s, err = d.Status(); err != nil || !s.PendingTryboot || s.RebootParam != "" {
		t.Fatalf("status after arming the mailbox: %+v, %v", s, err)
	}
}

func TestCreate(t *testing.T) {
	pisimtest.RequireTools(t)
	img := pisimtest.Default(t).Build(t)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pisim.Create(filepath.Join(t.TempDir(), "dev"), img, pisim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(d.Image())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img)
	if !bytes.Equal(got, want) {
		t.Fatal("copied image differs from the original")
	}
	if st, ok := sysStat(t, d.Image()); ok && st.Blocks*512 > fi.Size()/4 {
		t.Errorf("copy is not sparse: %d bytes allocated for %d", st.Blocks*512, fi.Size())
	}
	if _, err := pisim.Create(d.Root(), img, pisim.Options{}); err == nil {
		t.Error("create over an existing device: no error")
	}
	if _, err := pisim.Create(filepath.Join(t.TempDir(), "x"), img, pisim.Options{Model: "pi9"}); err == nil {
		t.Error("create with an unknown model: no error")
	}
	// --move renames the image in.
	moved, err := pisim.Create(filepath.Join(t.TempDir(), "moved"), img, pisim.Options{Move: true, Model: "pi5", BootMode: rpi.BootModeNVMe})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("image still at its old place after a move: %v", err)
	}
	if _, err := os.Stat(filepath.Join(moved.Root(), "dev", "nvme0n1")); err != nil {
		t.Errorf("NVMe device: %v", err)
	}
}

func sysStat(t *testing.T, name string) (*syscall.Stat_t, bool) {
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}

func TestOpenRejectsNonDevice(t *testing.T) {
	if _, err := pisim.Open(t.TempDir()); err == nil {
		t.Error("Open of an empty directory: no error")
	}
}
