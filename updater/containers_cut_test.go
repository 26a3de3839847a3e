package updater_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/containers"
	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
	"github.com/healthguard/gateway-ota/updater/release"
)

// publishContainers publishes a container-only release of set cs, as
// manifest-server create-update does.
func (w *world) publishContainers(t *testing.T, v string, n uint64, cs *release.ContainerSet) *release.Manifest {
	t.Helper()
	repo, err := publish.Open(w.repo, w.keys, publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := &release.Manifest{Schema: release.SchemaVersion, Version: v, Counter: n, Channel: "stable", Compatible: "rpi4",
		Created: epoch, HealthDeadline: release.Duration(20 * time.Second), Containers: cs}
	if err := repo.AddRelease(m, nil); err != nil {
		t.Fatal(err)
	}
	return m
}

// A power cut in the middle of a container-only switch: at the next boot
// the confirmer brings the committed set back, with its volume, and
// records the rollback, so the daemon does not try the release again.
func TestContainerSwitchCutByPowerLoss(t *testing.T) {
	e := newEngine(t)
	w := newWorld(t)
	ctx := context.Background()
	d := w.device(t)
	project := fmt.Sprintf("otacut%d", time.Now().UnixNano()%1e9)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	u := w.updater(t, d, func(c *updater.Config) {
		c.Containers.Project = project
		c.Containers.Labels = map[string]string{containerstest.LabelTest: e.id}
	})
	w.publishContainers(t, "1.1.0", 2, e.set(project, "good", port))
	if _, err := u.Update(ctx, updater.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.web(t, project, e.refs["good"], "good", port)
	put(t, base+"/data/note", "written by 1.1.0")

	// The update to 1.2.0 is cut after the new container started: the
	// journal says downloading, the switch journal is pending.
	m2 := w.publishContainers(t, "1.2.0", 3, e.set(project, "bad", port))
	mgr := &containers.Manager{Client: e.cli, Dir: filepath.Join(d.Root(), "data/ota/containers"), Project: project,
		Labels: map[string]string{containerstest.LabelTest: e.id}, Logf: t.Logf}
	if _, err := mgr.Apply(ctx, &release.Manifest{Version: "1.1.0"}, m2, ""); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if r, err := http.Get(base + "/version"); err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if strings.TrimSpace(string(b)) == "bad" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new container of 1.2.0 never answered")
		}
	}
	put(t, base+"/data/note", "written by 1.2.0")
	stateFile := filepath.Join(d.Root(), "data/ota/state.json")
	b, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	s["phase"], s["version"], s["counter"], s["manifest"] = updater.PhaseDownloading, m2.Version, m2.Counter, m2
	if b, err = json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PowerCut(); err != nil {
		t.Fatal(err)
	}

	cr, err := u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRolledBack {
		t.Fatalf("confirm after the cut: %+v %v, want rolled-back", cr, err)
	}
	e.web(t, project, e.refs["good"], "good", port)
	if got := get(t, base+"/data/note"); got != "written by 1.1.0" {
		t.Errorf("volume after the recovery: got %q, want the snapshot", got)
	}
	if pending, _, err := mgr.Pending(); err != nil || pending {
		t.Errorf("switch still pending: %v %v", pending, err)
	}
	res, err := u.Check(ctx)
	if err != nil || res.PreviouslyFailed == "" {
		t.Errorf("check after the recovery: %+v %v, want 1.2.0 marked as failed here", res, err)
	}
}
