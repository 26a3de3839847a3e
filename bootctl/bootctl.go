// Package bootctl is the A/B slot state machine on top of the Raspberry Pi
// tryboot mechanism. It reads what the firmware says about this boot
// (package rpi) and what the card says about the slots (package sdcard), and
// changes the boot selection in autoboot.txt.
//
// The states, for a card whose slot A is committed:
//
//	good(A) --try--> armed(B) --reboot--> trying(B) --commit--> good(B)
//	                    |                     |
//	                    | power cut,          | reboot, power cut, watchdog,
//	                    | watchdog            | failed health check
//	                    v                     v
//	                 good(A)               good(A)   (the firmware cleared the flag)
//
// What a power cut does at each step:
//   - try: the flag lives in the firmware (mailbox) or in /run (systemd's
//     reboot parameter); a power cut drops it and the committed slot boots.
//   - trying: the firmware cleared the flag before it started, so any reset
//     boots the committed slot again. Nothing on the card was changed.
//   - commit: autoboot.txt is rewritten in place with the same length, one
//     512-byte sector (see sdcard.Disk.RewriteFile). A cut before the write
//     leaves the old selection, after it the new one; there is no state in
//     between in which the firmware finds neither.
//
// The firmware has no boot counter: after a commit nothing falls back by
// itself. Commit only after the new slot has proved itself.
package bootctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// Errors a caller decides on.
var (
	// ErrNotOnTrial: commit was asked for, but this boot is not a trial of
	// the slot autoboot.txt names for trials (threat F10).
	ErrNotOnTrial = errors.New("not on a trial boot")
	// ErrOnTrial: try or rollback was asked for during a trial boot.
	ErrOnTrial = errors.New("this boot is a trial: commit it or reboot first")
	// ErrSlotEmpty: the slot to switch to holds no release.
	ErrSlotEmpty = errors.New("slot holds no release")
	// ErrLayout: the card is not in the A/B layout; nothing was written.
	ErrLayout = errors.New("unexpected card layout")
)

// Controller reads and changes the boot selection of one device.
type Controller struct {
	// Root is the prefix of every device path: "/" on a Pi, the device
	// directory of a virtual Pi.
	Root string
	// Card is the path of the card; empty means the block device of the
	// boot mode the bootloader reports (/dev/mmcblk0 for SD) under Root.
	Card string
	// Armer arms the trial boot; nil means rpi.DefaultArmer(Root).
	Armer rpi.Armer
	// Preflight checks that the bootloader can do tryboot; nil means
	// rpi.Preflight(Root).
	Preflight func() error
	// OnWrite, if set, wraps every write to the card (for crash tests).
	OnWrite func(io.WriterAt) io.WriterAt
}

func (c *Controller) root() string {
	if c.Root == "" {
		return "/"
	}
	return c.Root
}

func (c *Controller) armer() rpi.Armer {
	if c.Armer != nil {
		return c.Armer
	}
	return rpi.DefaultArmer(c.root())
}

// CardPath is the card the controller works on.
func (c *Controller) CardPath() (string, error) {
	if c.Card != "" {
		return c.Card, nil
	}
	bl, err := rpi.ReadBootloader(c.root())
	if err != nil {
		return "", err
	}
	dev, err := rpi.BlockDevice(bl.BootMode)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.root(), "dev", dev), nil
}

// SlotStatus is what a slot holds.
type SlotStatus struct {
	Slot          sdcard.Slot `json:"slot"`
	BootPartition int         `json:"boot_partition"`
	RootPartition int         `json:"root_partition"`
	Empty         bool        `json:"empty"`
	Version       string      `json:"version,omitempty"`
	Counter       uint64      `json:"counter,omitempty"`
	Compatible    string      `json:"compatible,omitempty"`
	Error         string      `json:"error,omitempty"`
}

// Status is the state of the device's boot selection.
type Status struct {
	Card               string      `json:"card"`
	Booted             sdcard.Slot `json:"booted"`
	BootedPartition    int         `json:"booted_partition"`
	Committed          sdcard.Slot `json:"committed"`
	CommittedPartition int         `json:"committed_partition"`
	TrialPartition     int         `json:"trial_partition"`
	// Trial: this boot is a trial (flag set and booted partition = [tryboot]).
	Trial bool `json:"trial"`
	// TrybootFlag is the raw flag the bootloader reports.
	TrybootFlag bool `json:"tryboot_flag"`
	// Armed: the next reboot will be a trial.
	Armed bool `json:"armed"`
	// CmdlineRoot is the root= the kernel was given.
	CmdlineRoot string       `json:"cmdline_root,omitempty"`
	Slots       []SlotStatus `json:"slots"`
	// Warnings are inconsistencies that do not stop the command.
	Warnings []string `json:"warnings,omitempty"`
}

// Slot returns the status of slot s.
func (st *Status) Slot(s sdcard.Slot) SlotStatus {
	for _, ss := range st.Slots {
		if ss.Slot == s {
			return ss
		}
	}
	return SlotStatus{Slot: s, Empty: true}
}

// state is everything read at the start of a command.
type state struct {
	st   *Status
	bl   rpi.Bootloader
	ab   *rpi.Autoboot
	disk *sdcard.Disk
	abN  int64 // length of autoboot.txt on the card
}

func (c *Controller) read(writable bool) (*state, error) {
	root := c.root()
	bl, err := rpi.ReadBootloader(root)
	if err != nil {
		return nil, fmt.Errorf("bootloader facts: %w", err)
	}
	card, err := c.CardPath()
	if err != nil {
		return nil, err
	}
	d, err := sdcard.Open(card, writable)
	if err != nil {
		return nil, fmt.Errorf("open card: %w", err)
	}
	if c.OnWrite != nil {
		d.Writer = c.OnWrite(d.Writer)
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if err := d.Table.CheckLayout(); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", card, ErrLayout, err)
	}
	raw, err := d.ReadFile(sdcard.PartAutoboot, rpi.AutobootFile, rpi.AutobootMaxSize)
	if err != nil {
		return nil, fmt.Errorf("read autoboot.txt: %w", err)
	}
	ab, err := rpi.ParseAutoboot(raw)
	if err != nil {
		return nil, err
	}
	st := &Status{
		Card:               card,
		BootedPartition:    bl.BootedPartition(ab),
		CommittedPartition: ab.Committed(),
		TrialPartition:     ab.Trial(),
		TrybootFlag:        bl.Tryboot,
		Trial:              bl.OnTrial(ab),
	}
	var okSlot bool
	if st.Booted, okSlot = sdcard.SlotForBootPartition(st.BootedPartition); !okSlot {
		st.Warnings = append(st.Warnings, fmt.Sprintf("booted partition %d is not a slot's boot partition", st.BootedPartition))
	}
	if st.Committed, okSlot = sdcard.SlotForBootPartition(st.CommittedPartition); !okSlot {
		st.Warnings = append(st.Warnings, fmt.Sprintf("autoboot.txt commits partition %d, which is not a slot's boot partition", st.CommittedPartition))
	}
	if cl, err := rpi.ReadCmdline(root); err == nil {
		st.CmdlineRoot = rpi.CmdlineRoot(cl)
		if st.Booted.Valid() {
			want := "PARTUUID=" + sdcard.PartUUID(d.Table.DiskID, st.Booted.RootPartition())
			if st.CmdlineRoot != want {
				st.Warnings = append(st.Warnings, fmt.Sprintf("kernel root %q is not slot %s's root %q", st.CmdlineRoot, st.Booted, want))
			}
		}
	}
	if armed, err := c.armer().Armed(); err == nil {
		st.Armed = armed
	} else {
		st.Warnings = append(st.Warnings, fmt.Sprintf("cannot tell whether a trial is armed: %v", err))
	}
	for _, s := range []sdcard.Slot{sdcard.SlotA, sdcard.SlotB} {
		st.Slots = append(st.Slots, slotStatus(d, s))
	}
	n, err := d.FileLength(sdcard.PartAutoboot, rpi.AutobootFile)
	if err != nil {
		return nil, fmt.Errorf("locate autoboot.txt: %w", err)
	}
	ok = true
	return &state{st: st, bl: bl, ab: ab, disk: d, abN: n}, nil
}

func slotStatus(d *sdcard.Disk, s sdcard.Slot) SlotStatus {
	ss := SlotStatus{Slot: s, BootPartition: s.BootPartition(), RootPartition: s.RootPartition()}
	info, err := d.SlotInfo(s)
	if errors.Is(err, fs.ErrNotExist) {
		ss.Empty = true
		return ss
	}
	if err != nil {
		ss.Empty = true
		ss.Error = err.Error()
		return ss
	}
	ss.Version, ss.Counter, ss.Compatible = info.Version, info.Counter, info.Compatible
	return ss
}

// Status reads the state of the device.
func (c *Controller) Status() (*Status, error) {
	s, err := c.read(false)
	if err != nil {
		return nil, err
	}
	s.disk.Close()
	return s.st, nil
}

// Result says what a command did.
type Result struct {
	Changed bool   `json:"changed"`
	Message string `json:"message"`
}

// Try arms a one-shot trial of the slot that is not booted. autoboot.txt is
// rewritten first if its [tryboot] section does not name that slot.
func (c *Controller) Try() (Result, error) {
	s, err := c.read(true)
	if err != nil {
		return Result{}, err
	}
	defer s.disk.Close()
	if s.st.Trial {
		return Result{}, ErrOnTrial
	}
	if !s.st.Booted.Valid() {
		return Result{}, fmt.Errorf("booted partition %d is not a slot: %w", s.st.BootedPartition, ErrLayout)
	}
	target := s.st.Booted.Other()
	if ts := s.st.Slot(target); ts.Empty {
		return Result{}, fmt.Errorf("slot %s: %w", target, ErrSlotEmpty)
	}
	pre := c.Preflight
	if pre == nil {
		pre = func() error { return rpi.Preflight(c.root()) }
	}
	if err := pre(); err != nil {
		return Result{}, err
	}
	if s.ab.Committed() != s.st.BootedPartition || s.ab.Trial() != target.BootPartition() {
		s.ab.SetCommitted(s.st.BootedPartition)
		s.ab.SetTrial(target.BootPartition())
		if err := c.writeAutoboot(s); err != nil {
			return Result{}, err
		}
	}
	if err := c.armer().Arm(); err != nil {
		return Result{}, fmt.Errorf("arm trial boot: %w", err)
	}
	return Result{Changed: true, Message: fmt.Sprintf("trial of slot %s (partition %d) armed for the next reboot", target, target.BootPartition())}, nil
}

// Commit makes the booted trial slot the committed one. It refuses unless
// the tryboot flag is set and the booted partition is the [tryboot] one
// (threat F10). Committing a slot that is already committed changes nothing
// and succeeds, so a confirmer cut off after the write can run again.
func (c *Controller) Commit() (Result, error) {
	s, err := c.read(true)
	if err != nil {
		return Result{}, err
	}
	defer s.disk.Close()
	if !s.st.Trial {
		if !s.st.TrybootFlag && s.st.Booted.Valid() && s.st.BootedPartition == s.st.CommittedPartition {
			return Result{Message: fmt.Sprintf("slot %s is already committed", s.st.Booted)}, nil
		}
		return Result{}, fmt.Errorf("tryboot flag %v, booted partition %d, trial partition %d: %w",
			s.st.TrybootFlag, s.st.BootedPartition, s.st.TrialPartition, ErrNotOnTrial)
	}
	s.ab.SetCommitted(s.st.BootedPartition)
	s.ab.SetTrial(s.st.Booted.Other().BootPartition())
	if err := c.writeAutoboot(s); err != nil {
		return Result{}, err
	}
	return Result{Changed: true, Message: fmt.Sprintf("slot %s (partition %d) committed", s.st.Booted, s.st.BootedPartition)}, nil
}

// Rollback makes the slot that is not booted the committed one again, for an
// operator who wants the previous release back. It takes effect at the next
// reboot. During a trial it only disarms: the committed slot already is the
// other one.
func (c *Controller) Rollback() (Result, error) {
	s, err := c.read(true)
	if err != nil {
		return Result{}, err
	}
	defer s.disk.Close()
	if !s.st.Booted.Valid() {
		return Result{}, fmt.Errorf("booted partition %d is not a slot: %w", s.st.BootedPartition, ErrLayout)
	}
	target := s.st.Booted.Other()
	if s.st.Trial {
		if err := c.armer().Disarm(); err != nil {
			return Result{}, fmt.Errorf("disarm: %w", err)
		}
		return Result{Message: fmt.Sprintf("this is a trial of slot %s; slot %s stays committed and boots at the next reboot", s.st.Booted, target)}, nil
	}
	if ts := s.st.Slot(target); ts.Empty {
		return Result{}, fmt.Errorf("slot %s: %w", target, ErrSlotEmpty)
	}
	if err := c.armer().Disarm(); err != nil {
		return Result{}, fmt.Errorf("disarm: %w", err)
	}
	if s.ab.Committed() == target.BootPartition() {
		return Result{Message: fmt.Sprintf("slot %s is already committed; it boots at the next reboot", target)}, nil
	}
	s.ab.SetCommitted(target.BootPartition())
	s.ab.SetTrial(s.st.BootedPartition)
	if err := c.writeAutoboot(s); err != nil {
		return Result{}, err
	}
	return Result{Changed: true, Message: fmt.Sprintf("slot %s (partition %d) committed; it boots at the next reboot", target, target.BootPartition())}, nil
}

// writeAutoboot renders the selection at the length the file already has
// and rewrites it in place.
func (c *Controller) writeAutoboot(s *state) error {
	b, err := s.ab.RenderPadded(int(s.abN))
	if err != nil {
		return fmt.Errorf("autoboot.txt on the card is %d bytes, too short for the new selection (%v); rebuild the card", s.abN, err)
	}
	if err := s.disk.RewriteFile(sdcard.PartAutoboot, rpi.AutobootFile, b); err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	return nil
}
