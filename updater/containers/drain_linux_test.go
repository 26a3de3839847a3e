package containers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
)

// procNetTCP is /proc/net/tcp of a namespace with a listener holding two
// completed connections, another idle listener, one handshake under way
// and an established connection.
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 24531 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24532 1 0000000000000000 100 0 0 10 0
   2: 020012AC:1F90 030012AC:C350 03 00000000:00000000 01:00000064 00000000     0        0 0 0 0000000000000000
   3: 020012AC:1F90 030012AC:C352 01 00000000:00000000 00:00000000 00000000     0        0 24533 1 0000000000000000 20 4 30 10 -1
`

func TestCountPending(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int
		bad      bool
	}{
		{"queued and half-open", procNetTCP, 3, false},
		{"header only", strings.SplitAfter(procNetTCP, "\n")[0], 0, false},
		{"empty", "", 0, false},
		{"short line", "header\n 0: 00000000:1F90\n", 0, true},
		{"queue not hex", "header\n 0: 00000000:1F90 00000000:0000 0A 00000000:zz\n", 0, true},
		{"queue without colon", "header\n 0: 00000000:1F90 00000000:0000 0A 00000000\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := countPending(strings.NewReader(tc.in))
			if tc.bad {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func FuzzCountPending(f *testing.F) {
	f.Add(procNetTCP)
	f.Add("")
	f.Add("h\n 0: a b 0A 0:ffffffff\n")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := countPending(strings.NewReader(s))
		if err == nil && n < 0 {
			t.Fatalf("negative count %d", n)
		}
	})
}

// TestDrainRefusesNewConnections drains a running container of the test
// service: a new connection is refused at once, one it already holds
// carries on, and undo lets new ones in again.
func TestDrainRefusesNewConnections(t *testing.T) {
	if why := containerstest.Available(); why != "" {
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		t.Skip("draining a container's network namespace needs root")
	}
	ctx := context.Background()
	cli, err := containerstest.Client()
	if err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("drain-%d", os.Getpid())
	tag := "ota-drain-test:" + label
	t.Cleanup(func() { containerstest.Cleanup(context.Background(), cli, label, tag) })
	if err := containerstest.Build(ctx, cli, containerstest.Image{Tag: tag, Env: map[string]string{"VERSION": "1"}, Test: label}); err != nil {
		t.Fatal(err)
	}
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: tag, Labels: map[string]string{containerstest.LabelTest: label}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	in, err := cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := in.Container.State.Pid
	var ip string
	for _, ep := range in.Container.NetworkSettings.Networks {
		ip = ep.IPAddress.String()
	}
	addr := net.JoinHostPort(ip, "8080")
	// The service listens a moment after it starts.
	var held net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if held, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service never listened at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer held.Close()
	br := bufio.NewReader(held)
	get := func() error {
		if _, err := fmt.Fprintf(held, "GET /version HTTP/1.1\r\nHost: svc\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		_, err = bufio.NewReader(resp.Body).ReadString('\n')
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("before the drain: %v", err)
	}

	undo, err := drainNetNS(pid, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = net.DialTimeout("tcp", addr, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a new connection to the drained container: got %v, want it refused", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("the refusal took %v: the connection was dropped, not refused", d)
	}
	if err := get(); err != nil {
		t.Fatalf("the connection held across the drain: %v", err)
	}
	if n, err := pendingConnections(pid); err != nil || n != 0 {
		t.Fatalf("pending connections after the drain: %d, %v", n, err)
	}

	if err := undo(); err != nil {
		t.Fatal(err)
	}
	again, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("after undo: %v", err)
	}
	again.Close()
}
