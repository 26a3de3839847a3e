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
