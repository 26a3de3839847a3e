//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package pisim

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes an exclusive lock on the device for one operation, so that
// two processes driving the same device cannot interleave their writes.
func (d *Device) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(d.Dir, "firmware", "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock device: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock device: %w", err)
	}
	return func() { f.Close() }, nil
}
