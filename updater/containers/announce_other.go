//go:build !linux

package containers

import (
	"errors"
	"net/netip"
	"time"
)

// announce needs Linux network namespaces; elsewhere it does nothing.
func announce(pid int, ip netip.Addr, count int, interval time.Duration) error {
	return errors.ErrUnsupported
}

// waitExit needs Linux pidfds; elsewhere it does nothing.
func waitExit(pid int, timeout time.Duration) (bool, error) {
	return false, errors.ErrUnsupported
}

// setAddr needs Linux network namespaces; elsewhere it does nothing.
func setAddr(pid int, own, ip netip.Addr, add bool) error {
	return errors.ErrUnsupported
}

// drainNetNS needs Linux network namespaces and nf_tables; elsewhere it does
// nothing.
func drainNetNS(pid int, wait time.Duration) (func() error, error) {
	return nil, errors.ErrUnsupported
}
