// Package atomicfile replaces small files so that a power cut at any moment
// leaves either the old content or the new, never a mix or nothing: the data
// goes to a temporary file in the same directory, which is synced, renamed
// over the target, and then the directory itself is synced so the rename
// survives. Every state file of the project (the updater's journal, the
// trusted metadata, systemd's reboot parameter, the virtual Pi's firmware
// state, device keys) is written through it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces name with data and gives it the permissions perm. A
// missing directory is created (0755).
func Write(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of dir (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
