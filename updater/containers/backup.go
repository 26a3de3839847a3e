package containers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
	"github.com/healthguard/gateway-ota/updater/release"
)

// helperMount is where a helper container mounts the volume it copies.
const helperMount = "/ota-volume"

// backupAll snapshots the Backup volumes of the changed services of set
// and records each in the journal as soon as its file is complete.
func (m *Manager) backupAll(ctx context.Context, set *release.ContainerSet, changed []string, ids map[string]string, j *journal) error {
	isChanged := map[string]bool{}
	for _, c := range changed {
		isChanged[c] = true
	}
	for _, s := range set.Services {
		if !isChanged[s.Name] {
			continue
		}
		for _, v := range s.Volumes {
			if !v.Backup || j.Backups[v.Source] != "" {
				continue
			}
			if _, err := m.Client.VolumeInspect(ctx, v.Source, client.VolumeInspectOptions{}); cerrdefs.IsNotFound(err) {
				continue // nothing to keep yet
			} else if err != nil {
				return fmt.Errorf("back up volume %s: %w", v.Source, err)
			}
			dst := filepath.Join(m.Dir, "backups", j.To, v.Source+".tar")
			if err := m.snapshot(ctx, v.Source, ids[s.Name], dst); err != nil {
				return fmt.Errorf("back up volume %s: %w", v.Source, err)
			}
			j.Backups[v.Source] = dst
			if err := m.saveJournal(j); err != nil {
				return err
			}
		}
	}
	return nil
}

// withHelper creates (never starts) a container from image with the volume
// mounted at helperMount, runs f with its ID and removes it.
func (m *Manager) withHelper(ctx context.Context, volume, image string, f func(id string) error) error {
	r, err := m.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Cmd: []string{"/ota-helper-never-runs"}, Labels: m.labels(map[string]string{LabelHelper: volume})},
		HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: helperMount}},
			NetworkMode: "none"},
	})
	if err != nil {
		return fmt.Errorf("helper container: %w", err)
	}
	defer m.Client.ContainerRemove(context.WithoutCancel(ctx), r.ID, client.ContainerRemoveOptions{Force: true})
	return f(r.ID)
}

// snapshot writes the volume's content as a tar (names relative to the
// volume root) to dst, refusing volumes over BackupLimit.
func (m *Manager) snapshot(ctx context.Context, volume, image, dst string) error {
	limit := m.BackupLimit
	if limit <= 0 {
		limit = DefaultBackupLimit
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return m.withHelper(ctx, volume, image, func(id string) error {
		r, err := m.Client.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: helperMount})
		if err != nil {
			return err
		}
		defer r.Content.Close()
		f, err := os.CreateTemp(filepath.Dir(dst), ".snapshot-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		tr, tw := tar.NewReader(r.Content), tar.NewWriter(f)
		var total int64
		prefix := path.Base(helperMount)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(strings.TrimPrefix(h.Name, prefix), "/")
			if name == "" {
				continue
			}
			total += h.Size
			if total > limit {
				return fmt.Errorf("more than %d bytes: %w", limit, ErrBackupTooLarge)
			}
			h.Name = name
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		m.logf("backed up volume %s (%d bytes)", volume, total)
		if err := os.Rename(f.Name(), dst); err != nil {
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(dst))
	})
}

// restoreVolume puts a snapshot back into a volume: into its mountpoint
// when this host can reach it, else through the engine's archive API.
func (m *Manager) restoreVolume(ctx context.Context, volume, file string) error {
	if err := m.volume(ctx, volume); err != nil {
		return err
	}
	v, err := m.Client.VolumeInspect(ctx, volume, client.VolumeInspectOptions{})
	if err != nil {
		return err
	}
	if mp := v.Volume.Mountpoint; mp != "" {
		if fi, err := os.Stat(mp); err == nil && fi.IsDir() {
			m.logf("restore volume %s into %s", volume, mp)
			return restoreDir(mp, file)
		}
	}
	// Through the engine: any local image will do for the helper.
	imgs, err := m.Client.ImageList(ctx, client.ImageListOptions{})
	if err != nil || len(imgs.Items) == 0 {
		return fmt.Errorf("no image for a helper container: %v", err)
	}
	m.logf("restore volume %s through the engine (files the failed release added stay)", volume)
	return m.withHelper(ctx, volume, imgs.Items[0].ID, func(id string) error {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = m.Client.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: helperMount, Content: f, CopyUIDGID: true})
		return err
	})
}

// restoreDir empties dir and extracts the snapshot into it through an
// os.Root: only regular files, directories and symlinks, none escaping
// (P1). The snapshot is opened and its first header read before anything
// is removed, so a missing, empty or corrupt snapshot leaves dir as it is.
func restoreDir(dir, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	h, herr := tr.Next()
	if herr != nil && !errors.Is(herr, io.EOF) {
		return fmt.Errorf("snapshot %s: %w", file, herr)
	}
	if fi, err := f.Stat(); err != nil {
		return err
	} else if fi.Size() == 0 {
		// snapshot always writes the tar's end blocks.
		return fmt.Errorf("snapshot %s: empty file", file)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for ; ; h, herr = tr.Next() {
		if errors.Is(herr, io.EOF) {
			return nil
		}
		if herr != nil {
			return herr
		}
		name := path.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("snapshot entry %q is not local", h.Name)
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
			root.Chmod(name, mode)
		case tar.TypeReg:
			if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
				return err
			}
			w, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return err
			}
		default:
			continue // devices, fifos, hard links: not restored
		}
		root.Lchown(name, h.Uid, h.Gid)
	}
}
