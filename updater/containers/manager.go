package containers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
	"github.com/healthguard/gateway-ota/updater/release"
)

// Labels the Manager puts on what it creates.
const (
	LabelProject = "com.healthguard.ota.project"
	LabelRelease = "com.healthguard.ota.release"
	LabelService = "com.healthguard.ota.service"
	// LabelSpec is a hash of the service's spec: equal hashes need no switch.
	LabelSpec = "com.healthguard.ota.spec"
	// LabelImage is the pinned image reference the container runs.
	LabelImage = "com.healthguard.ota.image"
	// LabelHelper marks the short-lived helper containers of backups.
	LabelHelper = "com.healthguard.ota.helper"
)

// Errors a caller decides on.
var (
	// ErrDigestMismatch: an image's content does not match its pinned digest
	// (a moved tag, a tampered registry). Refuse the release.
	ErrDigestMismatch = errors.New("image digest mismatch")
	// ErrPull: an image could not be fetched (registry down, no space). The
	// running set is untouched; retry later.
	ErrPull = errors.New("image pull failed")
	// ErrUnhealthy: a service did not become healthy by the deadline.
	ErrUnhealthy = errors.New("container unhealthy")
	// ErrBackupTooLarge: a volume marked for backup exceeds BackupLimit.
	ErrBackupTooLarge = errors.New("volume too large to back up")
)

// Defaults of the Manager's zero fields.
const (
	DefaultProject      = "ota"
	DefaultKeepReleases = 2
	DefaultBackupLimit  = 256 << 20
)

// Manager runs container sets on one engine. The zero values of the
// optional fields are documented on them; Client and Dir are required.
type Manager struct {
	// Client talks to the engine.
	Client *client.Client
	// Dir holds the switch journal, the volume backups and the history of
	// committed sets (on the data partition).
	Dir string
	// Project names the containers and the network; default "ota".
	Project string
	// Labels are added to every container, volume and network created.
	Labels map[string]string
	// KeepReleases is how many committed releases keep their images;
	// default 2.
	KeepReleases int
	// BackupLimit caps one volume's snapshot in bytes; default 256 MiB.
	BackupLimit int64
	// Logf logs; nil discards.
	Logf func(format string, args ...any)
}

func (m *Manager) project() string {
	if m.Project == "" {
		return DefaultProject
	}
	return m.Project
}

func (m *Manager) logf(format string, args ...any) {
	if m.Logf != nil {
		m.Logf(format, args...)
	}
}

// Name is the container name of a service.
func (m *Manager) Name(service string) string { return m.project() + "-" + service }

func (m *Manager) prevName(service string) string { return m.Name(service) + "-prev" }
func (m *Manager) nextName(service string) string { return m.Name(service) + "-next" }

// SpecHash is the hash of a service's spec the LabelSpec label carries.
func SpecHash(s release.Service) string {
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (m *Manager) labels(extra map[string]string) map[string]string {
	l := map[string]string{LabelProject: m.project()}
	for k, v := range m.Labels {
		l[k] = v
	}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// inspect returns a container by name, or nil when there is none.
func (m *Manager) inspect(ctx context.Context, name string) (*container.InspectResponse, error) {
	r, err := m.Client.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	return &r.Container, nil
}

// current returns the service's current container: the one named
// "<project>-<service>", else "<project>-<service>-next" (a hand-over
// leaves the new container under the name it started with, since renaming
// a running container briefly drops its DNS alias), or nil.
func (m *Manager) current(ctx context.Context, svc string) (*container.InspectResponse, error) {
	c, err := m.inspect(ctx, m.Name(svc))
	if err != nil || c != nil {
		return c, err
	}
	return m.inspect(ctx, m.nextName(svc))
}

// running lists the project's current containers by service (not
// "-prev" or helpers).
func (m *Manager) running(ctx context.Context) (map[string]container.Summary, error) {
	f := make(client.Filters).Add("label", LabelProject+"="+m.project())
	r, err := m.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]container.Summary{}
	for _, c := range r.Items {
		svc := c.Labels[LabelService]
		if svc == "" || c.Labels[LabelHelper] != "" {
			continue
		}
		for _, n := range c.Names {
			switch strings.TrimPrefix(n, "/") {
			case m.Name(svc):
				out[svc] = c
			case m.nextName(svc):
				if _, ok := out[svc]; !ok {
					out[svc] = c
				}
			}
		}
	}
	return out, nil
}

// journal is the record of a switch in progress (switch.json).
type journal struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Services whose containers change: their old containers, if any, are
	// (or are being) renamed to "-prev".
	Services []string `json:"services"`
	// Backups maps a volume name to its snapshot file.
	Backups map[string]string `json:"backups,omitempty"`
}

func (m *Manager) journalPath() string { return filepath.Join(m.Dir, "switch.json") }

func (m *Manager) loadJournal() (*journal, error) {
	b, err := os.ReadFile(m.journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("switch journal: %w", err)
	}
	return &j, nil
}

func (m *Manager) saveJournal(j *journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(m.journalPath(), append(b, '\n'), 0o600)
}

// Pending reports whether a switch is journalled but neither committed nor
// rolled back, and its target release.
func (m *Manager) Pending() (bool, string, error) {
	j, err := m.loadJournal()
	if err != nil || j == nil {
		return false, "", err
	}
	return true, j.To, nil
}

// Entry is one committed container set in the history.
type Entry struct {
	Version    string                `json:"version"`
	Counter    uint64                `json:"counter"`
	Containers *release.ContainerSet `json:"containers"`
}

func (m *Manager) historyPath() string { return filepath.Join(m.Dir, "history.json") }

// History returns the committed sets, oldest first.
func (m *Manager) History() ([]Entry, error) {
	b, err := os.ReadFile(m.historyPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h []Entry
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("container history: %w", err)
	}
	return h, nil
}

// Current returns the last committed set, or nil when none was.
func (m *Manager) Current() (*Entry, error) {
	h, err := m.History()
	if err != nil || len(h) == 0 {
		return nil, err
	}
	return &h[len(h)-1], nil
}

func (m *Manager) record(e Entry) error {
	h, err := m.History()
	if err != nil {
		return err
	}
	out := h[:0]
	for _, x := range h {
		if x.Version != e.Version {
			out = append(out, x)
		}
	}
	out = append(out, e)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Counter < out[j].Counter })
	if len(out) > 16 {
		out = out[len(out)-16:]
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(m.historyPath(), append(b, '\n'), 0o600)
}
