package containers

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
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
	return inNetNS(pid, func() error {
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
	})
}

// inNetNS runs f on a thread that has entered the network namespace of
// process pid (a container's). The thread is never unlocked, so it ends
// with its goroutine instead of going back to the scheduler in a foreign
// namespace.
func inNetNS(pid int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			ns, err := openNetNS(pid)
			if err != nil {
				return err
			}
			defer unix.Close(ns)
			if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter the network namespace of process %d: %w", pid, err)
			}
			return f()
		}()
	}()
	return <-errc
}

// openNetNS opens the network namespace of process pid.
func openNetNS(pid int) (int, error) {
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
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

// waitExit blocks until process pid exits or timeout passes, and reports
// whether it exited. It watches a pidfd, so it learns of the exit at once.
func waitExit(pid int, timeout time.Duration) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false, fmt.Errorf("watch process %d: %w", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("watch process %d: %w", pid, err)
		}
		if n > 0 {
			return true, nil
		}
	}
}

// setAddr adds (or with add false removes) ip as a /32 on the interface
// that holds own in the network namespace of process pid.
func setAddr(pid int, own, ip netip.Addr, add bool) error {
	if pid <= 0 || !own.Is4() || !ip.Is4() {
		return fmt.Errorf("address %v: need a process and IPv4 addresses", ip)
	}
	return inNetNS(pid, func() error {
		ifc, err := interfaceWith(own)
		if err != nil {
			return err
		}
		return netlinkAddr(ifc.Index, ip, add)
	})
}

// netlinkAddr sends one RTM_NEWADDR or RTM_DELADDR for ip/32 on interface
// index and waits for the kernel's acknowledgement.
func netlinkAddr(index int, ip netip.Addr, add bool) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("address %v: %w", ip, err)
	}
	defer unix.Close(s)
	typ, flags := uint16(unix.RTM_DELADDR), uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	if add {
		typ, flags = unix.RTM_NEWADDR, flags|unix.NLM_F_CREATE|unix.NLM_F_EXCL
	}
	a := ip.As4()
	attr := func(t uint16) []byte {
		b := binary.NativeEndian.AppendUint16(nil, 8)
		b = binary.NativeEndian.AppendUint16(b, t)
		return append(b, a[:]...)
	}
	body := []byte{unix.AF_INET, 32, 0, unix.RT_SCOPE_UNIVERSE}
	body = binary.NativeEndian.AppendUint32(body, uint32(index))
	body = append(body, attr(unix.IFA_LOCAL)...)
	body = append(body, attr(unix.IFA_ADDRESS)...)
	msg := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, typ)
	msg = binary.NativeEndian.AppendUint16(msg, flags)
	msg = binary.NativeEndian.AppendUint32(msg, 1)
	msg = binary.NativeEndian.AppendUint32(msg, 0)
	msg = append(msg, body...)
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("address %v: %w", ip, err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return fmt.Errorf("address %v: %w", ip, err)
	}
	if n < unix.NLMSG_HDRLEN+4 || binary.NativeEndian.Uint16(buf[4:6]) != unix.NLMSG_ERROR {
		return fmt.Errorf("address %v: unexpected netlink answer", ip)
	}
	if e := int32(binary.NativeEndian.Uint32(buf[unix.NLMSG_HDRLEN:])); e != 0 {
		return fmt.Errorf("address %v: %w", ip, unix.Errno(-e))
	}
	return nil
}
