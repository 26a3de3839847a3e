package containers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// drainTable is the nftables table drainNetNS adds to a container's network
// namespace. It goes with the namespace when the container stops.
const drainTable = "ota_drain"

// drainNetNS has the network namespace of process pid (a container's) refuse
// new TCP connections with a reset, while the connections it holds carry
// on, and then waits up to wait for the connections the kernel had
// already completed for its listeners to be accepted. A client refused
// this way tries the next address the service name resolves to (the new
// container's) instead of failing; a listener closed with completed
// connections still queued would reset them, and their requests with them,
// which is what a graceful stop alone cannot avoid. The returned undo
// lifts the refusal, for a container that keeps running after all. It
// needs root on the engine's host (CAP_NET_ADMIN in the container's
// namespace) and nf_tables in the kernel; the caller treats its error as a
// missed optimisation.
func drainNetNS(pid int, wait time.Duration) (undo func() error, err error) {
	if pid <= 0 {
		return nil, fmt.Errorf("drain: need a process, have %d", pid)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: drainTable}
	err = withNFTables(pid, func(nft *nftables.Conn) error {
		nft.AddTable(table)
		chain := nft.AddChain(&nftables.Chain{
			Name:     "input",
			Table:    table,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookInput,
			Priority: nftables.ChainPriorityFilter,
		})
		nft.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: refuseNewTCP()})
		return nft.Flush()
	})
	if err != nil {
		return nil, fmt.Errorf("drain: add the refusal: %w", err)
	}
	undo = func() error {
		err := withNFTables(pid, func(nft *nftables.Conn) error {
			nft.DelTable(table)
			return nft.Flush()
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("drain: lift the refusal: %w", err)
		}
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		n, err := pendingConnections(pid)
		if err != nil {
			return undo, err
		}
		if n == 0 {
			return undo, nil
		}
		if time.Now().After(deadline) {
			return undo, fmt.Errorf("drain: %d connection(s) still waiting to be accepted after %v", n, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// withNFTables runs f with an nftables connection to the network namespace
// of process pid.
func withNFTables(pid int, f func(*nftables.Conn) error) error {
	ns, err := openNetNS(pid)
	if err != nil {
		return err
	}
	defer unix.Close(ns)
	nft, err := nftables.New(nftables.WithNetNSFd(ns))
	if err != nil {
		return err
	}
	return f(nft)
}

// refuseNewTCP is the rule "tcp flags & (fin|syn|rst|ack) == syn reject
// with tcp reset": a connection's first segment is refused; every segment
// of an established connection, and the answers to connections the
// container makes, carry ACK and pass.
func refuseNewTCP() []expr.Any {
	const fin, syn, rst, ack = 0x01, 0x02, 0x04, 0x10
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		// The flags are byte 13 of the TCP header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{fin | syn | rst | ack}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syn}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST, Code: unix.NFT_REJECT_TCP_RST},
	}
}

// pendingConnections counts, in the network namespace of process pid, the
// connections completed but not yet accepted by a listener and those
// half-way through their handshake (whose last ACK the refusal lets
// through).
func pendingConnections(pid int) (int, error) {
	total := 0
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if os.IsNotExist(err) && f == "tcp6" {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("drain: %w", err)
		}
		n, err := countPending(fh)
		fh.Close()
		if err != nil {
			return 0, fmt.Errorf("drain: /proc/%d/net/%s: %w", pid, f, err)
		}
		total += n
	}
	return total, nil
}

// countPending reads a /proc/net/tcp table: for a listening socket (state
// 0A) rx_queue is its accept queue's length; a socket in SYN_RECV (03) is
// a handshake under way.
func countPending(r io.Reader) (int, error) {
	const synRecv, listen = "03", "0A"
	sc := bufio.NewScanner(r)
	n := 0
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		// sl local_address rem_address st tx_queue:rx_queue ...
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			return 0, fmt.Errorf("short line %q", sc.Text())
		}
		switch f[3] {
		case synRecv:
			n++
		case listen:
			_, rx, ok := strings.Cut(f[4], ":")
			if !ok {
				return 0, fmt.Errorf("bad queue field %q", f[4])
			}
			q, err := strconv.ParseUint(rx, 16, 32)
			if err != nil {
				return 0, fmt.Errorf("bad queue field %q", f[4])
			}
			n += int(q)
		}
	}
	return n, sc.Err()
}
