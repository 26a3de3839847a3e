package containers

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// announce sends count gratuitous ARP requests for ip, every interval, from
// the interface that holds ip in the network namespace of process pid (a
// container's). Neighbours whose ARP request for ip went unanswered
// because they asked while the engine was still plugging the interface in
// (the name resolves before the interface answers) take the address from
// it at once instead of retrying a second later. It needs root on the
// engine's host; the caller treats its error as a missed optimisation.
func announce(pid int, ip netip.Addr, count int, interval time.Duration) error {
	if pid <= 0 || !ip.Is4() {
		return fmt.Errorf("announce: need a process and an IPv4 address, have %d and %v", pid, ip)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread enters the container's namespace and is never
		// unlocked, so it ends with this goroutine instead of going back
		// to the scheduler in a foreign namespace.
		runtime.LockOSThread()
		errc <- func() error {
			ns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("announce: %w", err)
			}
			defer unix.Close(ns)
			if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("announce: setns: %w", err)
			}
			ifc, err := interfaceWith(ip)
			if err != nil {
				return err
			}
			proto := htons(unix.ETH_P_ARP)
			s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto))
			if err != nil {
				return fmt.Errorf("announce: %w", err)
			}
			defer unix.Close(s)
			// ARP request, Ethernet/IPv4, sender = target = ip.
			a := ip.As4()
			pkt := []byte{0, 1, 8, 0, 6, 4, 0, 1}
			pkt = append(pkt, ifc.HardwareAddr...)
			pkt = append(pkt, a[:]...)
			pkt = append(pkt, 0, 0, 0, 0, 0, 0)
			pkt = append(pkt, a[:]...)
			to := &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifc.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
			for i := range count {
				if i > 0 {
					time.Sleep(interval)
				}
				if err := unix.Sendto(s, pkt, 0, to); err != nil {
					return fmt.Errorf("announce: %w", err)
				}
			}
			return nil
		}()
	}()
	return <-errc
}

// interfaceWith returns the interface holding ip (in the current thread's
// namespace).
func interfaceWith(ip netip.Addr) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && len(ifc.HardwareAddr) == 6 {
				if got, ok := netip.AddrFromSlice(n.IP.To4()); ok && got == ip {
					return &ifc, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("announce: no Ethernet interface holds %v", ip)
}

// htons converts v to network byte order, as the packet socket wants its
// protocol number.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}
