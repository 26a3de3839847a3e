package rpi

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDefaultArmerMailbox(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A regular file named vcio is not the mailbox.
	if err := os.WriteFile(filepath.Join(root, VcioFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if a := DefaultArmer(root); !isRebootParam(a) {
		t.Errorf("DefaultArmer with a regular dev/vcio = %T, want RebootParam", a)
	}
	// A character device is; /dev/null stands in for it (mknod needs root).
	os.Remove(filepath.Join(root, VcioFile))
	if err := unix.Mknod(filepath.Join(root, VcioFile), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("cannot create a character device (needs root): %v", err)
	}
	a := DefaultArmer(root)
	m, ok := a.(Mailbox)
	if !ok {
		t.Fatalf("DefaultArmer with a character dev/vcio = %T, want Mailbox", a)
	}
	if m.Path != filepath.Join(root, VcioFile) {
		t.Errorf("Mailbox.Path = %q", m.Path)
	}
	// The device is /dev/null's, which has no mailbox ioctl: every call
	// must fail cleanly.
	if _, err := m.Armed(); err == nil {
		t.Error("Armed() on a device without the mailbox ioctl succeeded")
	}
	if err := m.Arm(); err == nil {
		t.Error("Arm() on a device without the mailbox ioctl succeeded")
	}
}

func isRebootParam(a Armer) bool { _, ok := a.(RebootParam); return ok }
