package rpi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
)

// Armer sets and clears the one-shot tryboot flag for the next reboot.
type Armer interface {
	// Arm makes the next reboot a trial boot.
	Arm() error
	// Disarm makes the next reboot a normal boot again.
	Disarm() error
	// Armed reports whether the next reboot is a trial boot.
	Armed() (bool, error)
}

var (
	_ Armer = RebootParam{}
	_ Armer = Mailbox{}
)

// Device paths, relative to the device root.
const (
	VcioFile        = "dev/vcio"
	RebootParamFile = "run/systemd/reboot-param"
)

// DefaultArmer picks how to arm a trial under root: the firmware mailbox
// when root/dev/vcio is a character device (a real Pi), else systemd's
// reboot parameter file under root (a virtual Pi, or a Pi kernel without
// vcio).
func DefaultArmer(root string) Armer {
	vcio := filepath.Join(root, VcioFile)
	if fi, err := os.Stat(vcio); err == nil && fi.Mode()&fs.ModeCharDevice != 0 {
		return Mailbox{Path: vcio}
	}
	return RebootParam{Path: filepath.Join(root, RebootParamFile)}
}

// TrybootRebootArgument is the reboot argument that asks for a trial boot:
// the Pi kernel's firmware driver sets the tryboot flag when the argument
// contains " tryboot" (with the leading space), and the partition number
// before it must be given once extra words follow (0: the default).
const TrybootRebootArgument = "0 tryboot"

// RebootParam arms a trial through systemd: systemd-shutdown passes the
// content of /run/systemd/reboot-param to the kernel as the reboot argument
// (what `systemctl reboot --reboot-argument="0 tryboot"` writes). The flag
// is set only if the reboot goes through systemd; a watchdog reset or power
// cut before that boots normally.
type RebootParam struct {
	Path string // e.g. /run/systemd/reboot-param
}

// Arm writes TrybootRebootArgument to Path, replacing it atomically.
func (r RebootParam) Arm() error {
	if err := atomicfile.Write(r.Path, []byte(TrybootRebootArgument+"\n"), 0o644); err != nil {
		return fmt.Errorf("arm tryboot: %w", err)
	}
	return nil
}

// Disarm removes Path. A missing file is not an error.
func (r RebootParam) Disarm() error {
	err := os.Remove(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disarm tryboot: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(r.Path)); err != nil {
		return fmt.Errorf("disarm tryboot: %w", err)
	}
	return nil
}

// maxRebootParam bounds the reboot parameter read; the kernel copies at most
// 256 bytes of it.
const maxRebootParam = 256

// Armed reports whether Path holds a reboot argument that the kernel would
// turn into the tryboot flag.
func (r RebootParam) Armed() (bool, error) {
	f, err := os.Open(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read reboot parameter: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRebootParam))
	if err != nil {
		return false, fmt.Errorf("read reboot parameter: %w", err)
	}
	return RebootArgumentArms(strings.TrimRight(string(b), "\n")), nil
}

// RebootArgumentArms reports whether a reboot argument sets the tryboot
// flag: the Pi kernel looks for " tryboot", leading space included.
func RebootArgumentArms(arg string) bool {
	return strings.Contains(arg, " tryboot")
}

// Mailbox arms a trial through the VideoCore firmware mailbox (/dev/vcio):
// the flag is stored in the firmware at once and survives any later reboot
// that does not clear it, including a plain `systemctl reboot`; a power cut
// loses it.
type Mailbox struct {
	Path string // e.g. /dev/vcio
}

// Firmware property tags for the reboot flags.
const (
	tagGetRebootFlags = 0x00030064
	tagSetRebootFlags = 0x00038064
	rebootFlagTryboot = 1 << 0
)

// Property-interface codes.
const (
	mboxRequest      = 0x00000000
	mboxSuccess      = 0x80000000
	mboxTagResponse  = 0x80000000
	mboxBufferLength = 7
)

// mboxBuffer is a property-interface message with one 4-byte tag, in the
// CPU's byte order: total size, request/response code, tag, value buffer
// size, tag request/response code, value, end tag.
type mboxBuffer [mboxBufferLength]uint32

// newMboxBuffer builds the message for one tag carrying value.
func newMboxBuffer(tag, value uint32) mboxBuffer {
	return mboxBuffer{4 * mboxBufferLength, mboxRequest, tag, 4, mboxRequest, value, 0}
}

// mboxValue checks the firmware's answer to a message for tag and returns
// the tag's value.
func mboxValue(b mboxBuffer, tag uint32) (uint32, error) {
	if b[1] != mboxSuccess {
		return 0, fmt.Errorf("firmware mailbox tag %#08x: response code %#08x, want %#08x", tag, b[1], uint32(mboxSuccess))
	}
	if b[2] != tag {
		return 0, fmt.Errorf("firmware mailbox: answer for tag %#08x, asked for %#08x", b[2], tag)
	}
	if b[4]&mboxTagResponse == 0 || b[4]&^mboxTagResponse != 4 {
		return 0, fmt.Errorf("firmware mailbox tag %#08x: tag response %#08x, want a 4-byte value", tag, b[4])
	}
	return b[5], nil
}

// iowr computes the Linux ioctl number _IOWR(typ, nr, size) for the
// architectures with the generic encoding (arm, arm64, x86, riscv).
func iowr(typ, nr, size uintptr) uint32 {
	const read, write = 2, 1
	return uint32((read|write)<<30 | size<<16 | typ<<8 | nr)
}

// ioctlMboxProperty is IOCTL_MBOX_PROPERTY of the vcio driver,
// _IOWR(100, 0, char *): 0xC0086400 on 64-bit, 0xC0046400 on 32-bit.
var ioctlMboxProperty = iowr(100, 0, unsafe.Sizeof(uintptr(0)))

// setRebootFlags sets the flags and reads them back.
func (m Mailbox) setRebootFlags(flags uint32) error {
	buf := newMboxBuffer(tagSetRebootFlags, flags)
	if err := m.call(&buf); err != nil {
		return err
	}
	if b := buf[1]; b != mboxSuccess {
		return fmt.Errorf("firmware mailbox tag %#08x: response code %#08x, want %#08x", uint32(tagSetRebootFlags), b, uint32(mboxSuccess))
	}
	got, err := m.rebootFlags()
	if err != nil {
		return err
	}
	if got != flags {
		return fmt.Errorf("firmware reboot flags read back as %#x after setting %#x", got, flags)
	}
	return nil
}

func (m Mailbox) rebootFlags() (uint32, error) {
	buf := newMboxBuffer(tagGetRebootFlags, 0)
	if err := m.call(&buf); err != nil {
		return 0, err
	}
	return mboxValue(buf, tagGetRebootFlags)
}

// Arm sets the tryboot reboot flag and checks it reads back.
func (m Mailbox) Arm() error {
	if err := m.setRebootFlags(rebootFlagTryboot); err != nil {
		return fmt.Errorf("arm tryboot: %w", err)
	}
	return nil
}

// Disarm clears the reboot flags and checks they read back as 0.
func (m Mailbox) Disarm() error {
	if err := m.setRebootFlags(0); err != nil {
		return fmt.Errorf("disarm tryboot: %w", err)
	}
	return nil
}

// Armed reads the reboot flags from the firmware.
func (m Mailbox) Armed() (bool, error) {
	f, err := m.rebootFlags()
	if err != nil {
		return false, fmt.Errorf("read reboot flags: %w", err)
	}
	return f&rebootFlagTryboot != 0, nil
}
