package bootctl_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/rpi/sdcard/sdcardtest"
)

// newPi makes a virtual Pi around a test card and powers it on.
func newPi(t *testing.T, card sdcardtest.Card, opts pisim.Options) *pisim.Device {
	t.Helper()
	img := sdcardtest.Make(t, t.TempDir(), card)
	d, err := pisim.Create(filepath.Join(t.TempDir(), "pi"), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PowerOn(); err != nil {
		t.Fatal(err)
	}
	return d
}

func status(t *testing.T, c *bootctl.Controller) *bootctl.Status {
	t.Helper()
	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type want struct {
	booted, committed sdcard.Slot
	trial, armed      bool
}

func check(t *testing.T, step string, c *bootctl.Controller, w want) {
	t.Helper()
	st := status(t, c)
	got := want{st.Booted, st.Committed, st.Trial, st.Armed}
	if got != w {
		t.Fatalf("%s: got %+v, want %+v (status %+v)", step, got, w, st)
	}
	if len(st.Warnings) > 0 {
		t.Fatalf("%s: warnings %v", step, st.Warnings)
	}
}

// TestLifecycle walks the states of the package doc on a virtual Pi.
func TestLifecycle(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{VersionA: "1.0.0", VersionB: "1.0.0"}, pisim.Options{})
	c := &bootctl.Controller{Root: pi.Root()}
	check(t, "power on", c, want{sdcard.SlotA, sdcard.SlotA, false, false})
	st := status(t, c)
	if st.Slot(sdcard.SlotA).Version != "1.0.0" || st.Slot(sdcard.SlotB).Empty {
		t.Fatalf("slots: %+v", st.Slots)
	}

	if _, err := c.Commit(); err != nil {
		t.Fatalf("commit of the committed slot should be a no-op: %v", err)
	}
	if _, err := c.Try(); err != nil {
		t.Fatal(err)
	}
	check(t, "armed", c, want{sdcard.SlotA, sdcard.SlotA, false, true})
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(t, "trial", c, want{sdcard.SlotB, sdcard.SlotA, true, false})
	if _, err := c.Try(); !errors.Is(err, bootctl.ErrOnTrial) {
		t.Fatalf("try during a trial: got %v, want ErrOnTrial", err)
	}
	// A reboot without commit returns to A.
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(t, "reboot without commit", c, want{sdcard.SlotA, sdcard.SlotA, false, false})
	if _, err := c.Commit(); err != nil {
		t.Fatal(err) // A is committed: a no-op, not a switch
	}
	check(t, "commit of committed A", c, want{sdcard.SlotA, sdcard.SlotA, false, false})

	// Try, reboot, commit, reboot: B is committed.
	if _, err := c.Try(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Commit(); err != nil || !r.Changed {
		t.Fatalf("commit: %+v %v", r, err)
	}
	check(t, "committed, before reboot", c, want{sdcard.SlotB, sdcard.SlotB, false, false})
	if _, err := pi.PowerCut(); err != nil {
		t.Fatal(err)
	}
	check(t, "B after power cut", c, want{sdcard.SlotB, sdcard.SlotB, false, false})

	// Rollback makes A committed again.
	if _, err := c.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(t, "rolled back", c, want{sdcard.SlotA, sdcard.SlotA, false, false})
}

func TestWatchdogDuringTrialReturnsToCommitted(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{VersionB: "2.0.0"}, pisim.Options{})
	c := &bootctl.Controller{Root: pi.Root()}
	if _, err := c.Try(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(t, "trial", c, want{sdcard.SlotB, sdcard.SlotA, true, false})
	if _, err := pi.Watchdog(); err != nil {
		t.Fatal(err)
	}
	check(t, "after watchdog", c, want{sdcard.SlotA, sdcard.SlotA, false, false})
	// Several quick power cuts on a healthy system never switch slots.
	for i := 0; i < 5; i++ {
		if _, err := pi.PowerCut(); err != nil {
			t.Fatal(err)
		}
	}
	check(t, "after power cuts", c, want{sdcard.SlotA, sdcard.SlotA, false, false})
}

func TestRefusals(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{}, pisim.Options{})
	c := &bootctl.Controller{Root: pi.Root()}
	if _, err := c.Try(); !errors.Is(err, bootctl.ErrSlotEmpty) {
		t.Errorf("try of an empty slot: got %v, want ErrSlotEmpty", err)
	}
	if _, err := c.Rollback(); !errors.Is(err, bootctl.ErrSlotEmpty) {
		t.Errorf("rollback to an empty slot: got %v, want ErrSlotEmpty", err)
	}
	// The flag set but the booted partition is not the [tryboot] one is
	// not a trial (F10): a Pi 4 bootloader older than 2022-11-25 ignores
	// [tryboot] yet reports the flag. Arm it behind bootctl's back.
	pi2 := newPi(t, sdcardtest.Card{VersionB: "2.0.0"}, pisim.Options{Model: "pi4", EEPROM: time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC)})
	c2 := &bootctl.Controller{Root: pi2.Root()}
	if err := pi2.Mailbox().Arm(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi2.Reboot(); err != nil {
		t.Fatal(err)
	}
	st := status(t, c2)
	if !st.TrybootFlag || st.Trial || st.Booted != sdcard.SlotA {
		t.Fatalf("flag %v trial %v booted %s, want flag set, no trial, slot A", st.TrybootFlag, st.Trial, st.Booted)
	}
	if _, err := c2.Commit(); !errors.Is(err, bootctl.ErrNotOnTrial) {
		t.Errorf("commit with the flag on the committed partition: got %v, want ErrNotOnTrial", err)
	}
}

func TestPreflightRefusesOldEEPROM(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{VersionB: "2.0.0"}, pisim.Options{Model: "pi4", EEPROM: time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC)})
	c := &bootctl.Controller{Root: pi.Root()}
	_, err := c.Try()
	if !errors.Is(err, rpi.ErrTrybootUnsupported) {
		t.Fatalf("got %v, want ErrTrybootUnsupported", err)
	}
	if bootctl.ExitCode(err) != bootctl.ExitUnsupported {
		t.Errorf("exit code %d", bootctl.ExitCode(err))
	}
	if armed, _ := rpi.DefaultArmer(pi.Root()).Armed(); armed {
		t.Error("armed although the preflight refused")
	}
}

func TestPi5OldEEPROMReportsPartitionZero(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{VersionB: "2.0.0"}, pisim.Options{Model: "pi5", EEPROM: time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)})
	c := &bootctl.Controller{Root: pi.Root()}
	if _, err := c.Try(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(t, "pi5 trial", c, want{sdcard.SlotB, sdcard.SlotA, true, false})
	if _, err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	check(t, "pi5 committed", c, want{sdcard.SlotB, sdcard.SlotB, false, false})
}

func TestLayoutRefused(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{VersionB: "2.0.0"}, pisim.Options{})
	// A card that is not in the A/B layout: nothing may be written to it.
	f, err := os.OpenFile(pi.Image(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the extended boot record chain after p5: p6 and p7 disappear.
	tab, _, _ := sdcardtest.Layout.Table(0x1234abcd)
	ext, _ := tab.Get(sdcard.PartExtended)
	var zero [16]byte
	if _, err := f.WriteAt(zero[:], ext.Start+462); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before, _ := os.ReadFile(pi.Image())
	c := &bootctl.Controller{Root: pi.Root()}
	_, err = c.Try()
	if !errors.Is(err, bootctl.ErrLayout) || bootctl.ExitCode(err) != bootctl.ExitLayout {
		t.Fatalf("got %v, want ErrLayout", err)
	}
	after, _ := os.ReadFile(pi.Image())
	if !bytes.Equal(before, after) {
		t.Fatal("card changed although the layout was refused")
	}
}

// write is one write the commit made.
type write struct {
	off  int64
	data []byte
}

type recorder struct {
	w      io.WriterAt
	writes []write
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.writes = append(r.writes, write{off, bytes.Clone(p)})
	return r.w.WriteAt(p, off)
}

// TestCommitCrashPoints enumerates every write the commit makes on a real
// FAT image and, after every prefix of them (and every byte at which a
// write could tear), powers the virtual Pi on again: the firmware model must
// find a bootable partition each time, the old selection before the write
// and the new one after it.
func TestCommitCrashPoints(t *testing.T) {
	pi := newPi(t, sdcardtest.Card{VersionA: "1.0.0", VersionB: "2.0.0"}, pisim.Options{})
	c := &bootctl.Controller{Root: pi.Root()}
	if _, err := c.Try(); err != nil {
		t.Fatal(err)
	}
	if _, err := pi.Reboot(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(pi.Image())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c.OnWrite = func(w io.WriterAt) io.WriterAt { rec.w = w; return rec }
	if _, err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) == 0 {
		t.Fatal("commit wrote nothing")
	}
	t.Logf("commit made %d write(s): %d bytes at %d", len(rec.writes), len(rec.writes[0].data), rec.writes[0].off)

	img, err := os.OpenFile(pi.Image(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	restore := func() {
		for _, w := range rec.writes {
			if _, err := img.WriteAt(before[w.off:w.off+int64(len(w.data))], w.off); err != nil {
				t.Fatal(err)
			}
		}
	}
	boots := 0
	try := func(name string, apply func(), wantSlot string) {
		restore()
		apply()
		if err := img.Sync(); err != nil {
			t.Fatal(err)
		}
		b, err := pi.PowerCut()
		boots++
		if err != nil {
			t.Fatalf("%s: the virtual Pi did not boot: %v", name, err)
		}
		if b.Slot != "A" && b.Slot != "B" {
			t.Fatalf("%s: booted partition %d, not a slot", name, b.Partition)
		}
		if wantSlot != "" && b.Slot != wantSlot {
			t.Fatalf("%s: booted slot %s, want %s", name, b.Slot, wantSlot)
		}
	}
	for k := 0; k <= len(rec.writes); k++ {
		want := "A"
		if k == len(rec.writes) {
			want = "B"
		}
		try(fmt.Sprintf("after %d of %d writes", k, len(rec.writes)), func() {
			for _, w := range rec.writes[:k] {
				img.WriteAt(w.data, w.off)
			}
		}, want)
	}
	// A write torn at any byte: the old and new content mixed.
	for i, w := range rec.writes {
		for cut := 1; cut < len(w.data); cut++ {
			try(fmt.Sprintf("write %d torn at byte %d", i, cut), func() {
				for _, prev := range rec.writes[:i] {
					img.WriteAt(prev.data, prev.off)
				}
				img.WriteAt(w.data[:cut], w.off)
			}, "")
		}
	}
	t.Logf("booted the virtual Pi %d times, every one from a slot", boots)
}
