package rpi

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"
)

func TestRebootParam(t *testing.T) {
	root := t.TempDir()
	a := DefaultArmer(root)
	r, ok := a.(RebootParam)
	if !ok {
		t.Fatalf("DefaultArmer without dev/vcio = %T, want RebootParam", a)
	}
	if want := filepath.Join(root, "run", "systemd", "reboot-param"); r.Path != want {
		t.Errorf("Path = %q, want %q", r.Path, want)
	}
	armed := func(want bool) {
		t.Helper()
		got, err := a.Armed()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("Armed() = %v, want %v", got, want)
		}
	}
	armed(false)
	if err := a.Disarm(); err != nil {
		t.Fatalf("Disarm when not armed: %v", err)
	}
	if err := a.Arm(); err != nil {
		t.Fatal(err)
	}
	armed(true)
	b, err := os.ReadFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "0 tryboot\n"; got != want {
		t.Errorf("reboot-param = %q, want %q", got, want)
	}
	if err := a.Arm(); err != nil { // arming twice is fine
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(r.Path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := a.Disarm(); err != nil {
		t.Fatal(err)
	}
	armed(false)
	if _, err := os.Stat(r.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reboot-param still there after Disarm: %v", err)
	}
}

func TestRebootArgumentArms(t *testing.T) {
	for arg, want := range map[string]bool{
		"0 tryboot":  true,
		"2 tryboot":  true,
		" tryboot":   true,
		"tryboot":    false, // the kernel wants the leading space
		"0":          false,
		"":           false,
		"0 trybootx": true, // a substring match, as in the kernel
	} {
		if got := RebootArgumentArms(arg); got != want {
			t.Errorf("RebootArgumentArms(%q) = %v, want %v", arg, got, want)
		}
	}
	root := writeRoot(t, map[string][]byte{RebootParamFile: []byte("0\n")})
	if got, err := DefaultArmer(root).Armed(); err != nil || got {
		t.Errorf("Armed() with reboot-param %q = %v, %v; want false", "0", got, err)
	}
}

func TestMailboxBuffer(t *testing.T) {
	got := newMboxBuffer(tagSetRebootFlags, 1)
	want := mboxBuffer{28, 0, 0x00038064, 4, 0, 1, 0}
	if got != want {
		t.Errorf("SET buffer = %#x, want %#x", got, want)
	}
	if got, want := newMboxBuffer(tagGetRebootFlags, 0), (mboxBuffer{28, 0, 0x00030064, 4, 0, 0, 0}); got != want {
		t.Errorf("GET buffer = %#x, want %#x", got, want)
	}

	tests := []struct {
		name string
		buf  mboxBuffer
		want uint32
		err  bool
	}{
		{"armed", mboxBuffer{28, 0x80000000, 0x00030064, 4, 0x80000004, 1, 0}, 1, false},
		{"not armed", mboxBuffer{28, 0x80000000, 0x00030064, 4, 0x80000004, 0, 0}, 0, false},
		{"parse error", mboxBuffer{28, 0x80000001, 0x00030064, 4, 0, 0, 0}, 0, true},
		{"not answered", mboxBuffer{28, 0, 0x00030064, 4, 0, 0, 0}, 0, true},
		{"tag not answered", mboxBuffer{28, 0x80000000, 0x00030064, 4, 0, 1, 0}, 0, true},
		{"wrong length", mboxBuffer{28, 0x80000000, 0x00030064, 4, 0x80000008, 1, 0}, 0, true},
		{"other tag", mboxBuffer{28, 0x80000000, 0x00030046, 4, 0x80000004, 1, 0}, 0, true},
	}
	for _, tt := range tests {
		got, err := mboxValue(tt.buf, tagGetRebootFlags)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: mboxValue = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestIoctlNumber(t *testing.T) {
	if got := iowr(100, 0, 8); got != 0xC0086400 {
		t.Errorf("_IOWR(100, 0, char*) on 64-bit = %#x, want 0xc0086400", got)
	}
	if got := iowr(100, 0, 4); got != 0xC0046400 {
		t.Errorf("_IOWR(100, 0, char*) on 32-bit = %#x, want 0xc0046400", got)
	}
	want := uint32(0xC0086400)
	if unsafe.Sizeof(uintptr(0)) == 4 {
		want = 0xC0046400
	}
	if ioctlMboxProperty != want {
		t.Errorf("ioctlMboxProperty = %#x, want %#x on %s", ioctlMboxProperty, want, runtime.GOARCH)
	}
}
