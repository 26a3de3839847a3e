package containers

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
)

// TestTakeOverNotAfterGiveBack: the "old container" is a host process
// holding a free address of the project network. When it exits before
// giveBack (a stop that worked), the new container takes the address and
// giveBack returns it at once; when it exits only after giveBack gave up
// waiting (a stop that failed), the address is never taken.
func TestTakeOverNotAfterGiveBack(t *testing.T) {
	if why := containerstest.Available(); why != "" {
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		t.Skip("taking over an address in a container's network namespace needs root")
	}
	ctx := context.Background()
	cli, err := containerstest.Client()
	if err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("takeover-%d", os.Getpid())
	tag := "ota-takeover-test:" + label
	t.Cleanup(func() { containerstest.Cleanup(context.Background(), cli, label, tag) })
	if err := containerstest.Build(ctx, cli, containerstest.Image{Tag: tag, Env: map[string]string{"VERSION": "1"}, Test: label}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	m := &Manager{Client: cli, Dir: t.TempDir(), Project: "ota" + strings.ReplaceAll(label, "-", ""),
		Labels: map[string]string{containerstest.LabelTest: label},
		Logf: func(f string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			logs = append(logs, fmt.Sprintf(f, a...))
		}}
	took := func() (bool, []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logs {
			if strings.Contains(l, "took over") {
				return true, logs
			}
		}
		return false, logs
	}
	if err := m.network(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: tag, Labels: map[string]string{containerstest.LabelTest: label}},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			m.project(): {}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	in, err := m.inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	own := in.NetworkSettings.Networks[m.project()].IPAddress
	a := own.As4()
	a[3] = 200
	addr := netip.AddrFrom4(a)
	holds := func() bool {
		return inNetNS(in.State.Pid, func() error { _, err := interfaceWith(addr); return err }) == nil
	}
	oldProcess := func(t *testing.T) (*container.InspectResponse, func()) {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		old := &container.InspectResponse{ID: "old-" + label, State: &container.State{Running: true, Pid: cmd.Process.Pid},
			NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{m.project(): {IPAddress: addr}}}}
		return old, func() { cmd.Process.Kill(); cmd.Wait() }
	}

	t.Run("stopped", func(t *testing.T) {
		old, exit := oldProcess(t)
		giveBack := m.takeOver(ctx, old, c.ID)
		exit()
		time.Sleep(200 * time.Millisecond)
		if ok, l := took(); !ok || !holds() {
			t.Fatalf("the address was not taken over after the old process exited (logs %q)", l)
		}
		began := time.Now()
		giveBack()
		if d := time.Since(began); d >= time.Second {
			t.Errorf("giveBack took %v", d)
		}
		if holds() {
			t.Errorf("the address is still held after giveBack")
		}
	})
	mu.Lock()
	logs = nil
	mu.Unlock()
	t.Run("stop failed", func(t *testing.T) {
		old, exit := oldProcess(t)
		giveBack := m.takeOver(ctx, old, c.ID)
		giveBack() // the old process still runs: gives up after a second
		exit()
		time.Sleep(500 * time.Millisecond)
		if ok, l := took(); ok || holds() {
			t.Fatalf("the address was taken over after giveBack returned (logs %q)", l)
		}
	})
}
