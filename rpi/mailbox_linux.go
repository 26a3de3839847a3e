package rpi

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// call sends buf to the firmware through the vcio driver and leaves the
// answer in buf.
func (m Mailbox) call(buf *mboxBuffer) error {
	fd, err := unix.Open(m.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open firmware mailbox %s: %w", m.Path, err)
	}
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(ioctlMboxProperty), uintptr(unsafe.Pointer(buf)))
	if errno != 0 {
		return fmt.Errorf("firmware mailbox ioctl on %s: %w", m.Path, errno)
	}
	return nil
}
