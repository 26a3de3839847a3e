package pisim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// ErrNoBootablePartition is returned (wrapped) by a boot that found nothing
// to boot: the device is bricked until its card changes and it is powered
// on again.
var ErrNoBootablePartition = errors.New("no bootable partition")

// ErrNotRunning is returned (wrapped) by Reboot, Watchdog and the mailbox
// when no OS runs on the device.
var ErrNotRunning = errors.New("device is not running")

// maxAttempts caps the attempts of one boot. The firmware and a panicking
// kernel would retry forever; since every attempt after the first is a
// clean one that repeats the one before, the model stops after a clean
// attempt fails, and never goes beyond this cap.
const maxAttempts = 4

// Options describe the board of a new device. Zero values take defaults.
type Options struct {
	// Model is "pi4" (the default), "pi5" or "pi3".
	Model string
	// EEPROM is the build date of the bootloader EEPROM; default
	// DefaultEEPROM. Ignored on boards without one (pi3).
	EEPROM time.Time
	// BootMode is the medium the card is booted from; default SD.
	BootMode rpi.BootMode
	// Move makes Create rename the image into the device instead of
	// copying it.
	Move bool
}

// Device is a virtual Raspberry Pi rooted at Dir.
type Device struct {
	Dir string
}

// File names inside the device directory.
const imageName = "sdcard.img"

// Create makes a device directory at dir (which must not exist or be
// empty) around a copy of image: holes of the sparse image stay holes, and
// the copy is a reflink where the file system offers one. The device is
// left powered off: nothing boots until PowerOn.
func Create(dir, image string, opts Options) (*Device, error) {
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	b, err := lookupBoard(opts.Model)
	if err != nil {
		return nil, err
	}
	if opts.EEPROM.IsZero() {
		opts.EEPROM = DefaultEEPROM
	}
	if !b.eeprom {
		opts.EEPROM = time.Time{}
	}
	if opts.BootMode == 0 {
		opts.BootMode = rpi.BootModeSD
	}
	blk, err := rpi.BlockDevice(opts.BootMode)
	if err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("create device: %s exists and is not empty", dir)
	}
	d := &Device{Dir: dir}
	for _, sub := range []string{"dev", "firmware", "proc", "run", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create device: %w", err)
		}
	}
	if opts.Move {
		err = moveFile(image, d.Image())
	} else {
		err = copySparse(image, d.Image())
	}
	if err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	if err := os.Symlink(filepath.Join("..", imageName), filepath.Join(dir, "dev", blk)); err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	if err := mountData(d.Image(), filepath.Join(dir, "data")); err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	st := State{
		Format:       stateFormat,
		Model:        b.name,
		EEPROM:       opts.EEPROM,
		Capabilities: b.capabilities(opts.EEPROM),
		BootMode:     opts.BootMode,
		Power:        PowerOff,
	}
	if err := d.writeState(st); err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	return d, nil
}

// Open opens an existing device directory.
func Open(dir string) (*Device, error) {
	d := &Device{Dir: dir}
	if _, err := d.readState(); err != nil {
		return nil, fmt.Errorf("open device %s: %w", dir, err)
	}
	if _, err := os.Stat(d.Image()); err != nil {
		return nil, fmt.Errorf("open device %s: %w", dir, err)
	}
	return d, nil
}

// Root is the device root: what on-device commands take as --root.
func (d *Device) Root() string { return d.Dir }

// Image is the card image of the device.
func (d *Device) Image() string { return filepath.Join(d.Dir, imageName) }

// State returns what the board keeps.
func (d *Device) State() (State, error) { return d.readState() }

// PowerOn boots the device from off. Powering on a device that runs (or
// hangs bricked) cuts its power first: the boot's cause is then
// "power-cut".
func (d *Device) PowerOn() (Boot, error) {
	return d.boot(func(st State) (string, error) {
		if st.Power == PowerOff {
			return CausePowerOn, nil
		}
		return CausePowerCut, nil
	})
}

// Reboot is an orderly reboot of the running system: the tryboot flag is
// set if run/systemd/reboot-param asks for it or the mailbox flag is set.
func (d *Device) Reboot() (Boot, error) {
	return d.boot(func(st State) (string, error) {
		if st.Power != PowerRunning {
			return "", fmt.Errorf("reboot: %w (power %s)", ErrNotRunning, st.Power)
		}
		return CauseReboot, nil
	})
}

// PowerCut cuts the power and powers on again: no flag, and the mailbox
// flag is lost. On a device that is off it is a plain power-on.
func (d *Device) PowerCut() (Boot, error) {
	return d.PowerOn()
}

// Watchdog is a watchdog bite of the running system: a reset without the
// tryboot flag.
func (d *Device) Watchdog() (Boot, error) {
	return d.boot(func(st State) (string, error) {
		if st.Power != PowerRunning {
			return "", fmt.Errorf("watchdog: %w (power %s)", ErrNotRunning, st.Power)
		}
		return CauseWatchdog, nil
	})
}

// PowerOff removes the power: the mailbox flag, /run and /proc are gone.
func (d *Device) PowerOff() error {
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := d.readState()
	if err != nil {
		return err
	}
	st.Power, st.TrybootFlag, st.Bricked = PowerOff, false, ""
	if err := d.clearVolatile(); err != nil {
		return err
	}
	return d.writeState(st)
}

// boot runs one boot: cause decides, from the state before it, why the
// board (re)starts, or refuses.
func (d *Device) boot(cause func(State) (string, error)) (Boot, error) {
	unlock, err := d.lock()
	if err != nil {
		return Boot{}, err
	}
	defer unlock()
	st, err := d.readState()
	if err != nil {
		return Boot{}, err
	}
	why, err := cause(st)
	if err != nil {
		return Boot{}, err
	}
	b, err := lookupBoard(st.Model)
	if err != nil {
		return Boot{}, err
	}
	blk, err := rpi.BlockDevice(st.BootMode)
	if err != nil {
		return Boot{}, err
	}

	// Step 1: the flag of this boot. Only an orderly reboot carries it;
	// power loss clears the mailbox flag, and a watchdog bite is a reset
	// without it (docs/tryboot.md item 2).
	t := try{}
	if why == CauseReboot {
		param, err := d.rebootParam()
		if err != nil {
			return Boot{}, err
		}
		t.flag, t.rebootPartition = rebootFlag(param)
		t.flag = t.flag || st.TrybootFlag
	}
	// The firmware clears the flag before it starts, so any later reset
	// boots the committed partition (Pi docs bootflow-2711.adoc,
	// "Fail-safe OS updates"). Record that first: whatever happens to
	// this boot, the flag is spent.
	st.BootCounter++
	st.TrybootFlag = false
	st.Power, st.Bricked = PowerOff, ""
	if err := d.clearVolatile(); err != nil {
		return Boot{}, err
	}
	if err := d.writeState(st); err != nil {
		return Boot{}, err
	}

	fw := &firmware{board: b, eeprom: st.EEPROM, blkdev: blk}
	card, err := sdcard.Open(d.Image(), false)
	if err != nil {
		fw.cardErr = err
	} else {
		fw.card = card
		defer card.Close()
	}

	res := Boot{Counter: st.BootCounter, Cause: why}
	var kv kernelView
	var bootErr error
	for n := 1; ; n++ {
		a := Attempt{Boot: st.BootCounter, Attempt: n, Cause: why}
		view, fail := fw.attempt(t, &a)
		if fail == booted {
			a.Result = ResultBooted
			res.Attempts = append(res.Attempts, a)
			kv = view
			res.Tryboot = t.flag
			break
		}
		if t.clean() || n >= maxAttempts {
			a.Result = ResultFailed
			res.Attempts = append(res.Attempts, a)
			bootErr = fmt.Errorf("boot %d (%s): %w: %s", st.BootCounter, res.Cause, ErrNoBootablePartition, a.Reason)
			break
		}
		a.Result = ResultFallback
		res.Attempts = append(res.Attempts, a)
		// A failed attempt ends in a reset without the flag: the firmware
		// retries its boot order, a panicked kernel reboots.
		why = CauseRetry
		if fail == kernelPanic {
			why = CausePanic
		}
		t = try{}
	}
	if err := d.appendLog(res.Attempts); err != nil {
		return res, err
	}
	if bootErr != nil {
		st.Power, st.Bricked = PowerBricked, bootErr.Error()
		st.LastBoot = &res
		if err := d.writeState(st); err != nil {
			return res, err
		}
		return res, bootErr
	}

	res.Partition = kv.partition
	res.ReportedPartition = kv.partition
	if !b.reportsPartition(st.EEPROM) {
		res.ReportedPartition = 0
	}
	if s, ok := sdcard.SlotForBootPartition(kv.partition); ok {
		res.Slot = string(s)
	}
	res.Cmdline, res.Root, res.RootPartition = kv.cmdline, kv.root, kv.rootPart
	if err := d.present(b, st, res); err != nil {
		return res, err
	}
	st.Power = PowerRunning
	st.LastBoot = &res
	if err := d.writeState(st); err != nil {
		return res, err
	}
	return res, nil
}

// rebootParam is the first line of run/systemd/reboot-param, "" if none.
func (d *Device) rebootParam() (string, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(rpi.RebootParamFile)))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reboot parameter: %w", err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(s, " \t\r"), nil
}

// Status is the state with what a reboot would do now.
type Status struct {
	State
	// RebootParam is the content of run/systemd/reboot-param.
	RebootParam string `json:"reboot_param,omitempty"`
	// PendingTryboot: an orderly reboot now would set the tryboot flag,
	// through the reboot parameter or the mailbox flag.
	PendingTryboot bool `json:"pending_tryboot"`
}

// Status returns the state and what the next orderly reboot would carry.
func (d *Device) Status() (Status, error) {
	st, err := d.readState()
	if err != nil {
		return Status{}, err
	}
	s := Status{State: st}
	if st.Power == PowerRunning {
		if s.RebootParam, err = d.rebootParam(); err != nil {
			return s, err
		}
		flag, _ := rebootFlag(s.RebootParam)
		s.PendingTryboot = flag || st.TrybootFlag
	}
	return s, nil
}

// Mailbox stands in for the firmware mailbox behind /dev/vcio: it sets,
// clears and reads the one-shot tryboot flag the board keeps (tags
// 0x00038064 and 0x00030064, docs/tryboot.md item 2). It works only while the
// OS runs.
func (d *Device) Mailbox() rpi.Armer { return mailbox{d} }

type mailbox struct{ d *Device }

var _ rpi.Armer = mailbox{}

func (m mailbox) set(v bool) error {
	unlock, err := m.d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := m.d.readState()
	if err != nil {
		return err
	}
	if st.Power != PowerRunning {
		return fmt.Errorf("mailbox: %w", ErrNotRunning)
	}
	st.TrybootFlag = v
	return m.d.writeState(st)
}

func (m mailbox) Arm() error    { return m.set(true) }
func (m mailbox) Disarm() error { return m.set(false) }

func (m mailbox) Armed() (bool, error) {
	st, err := m.d.readState()
	if err != nil {
		return false, err
	}
	if st.Power != PowerRunning {
		return false, fmt.Errorf("mailbox: %w", ErrNotRunning)
	}
	return st.TrybootFlag, nil
}
