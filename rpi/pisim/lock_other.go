//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package pisim

// lock does nothing here: callers must not drive one device from two
// processes at once.
func (d *Device) lock() (func(), error) { return func() {}, nil }
