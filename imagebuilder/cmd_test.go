package imagebuilder_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder"
)

// TestCommand builds the imagebuilder binary and drives "disk" end to end:
// the card it writes is the one the library writes, progress goes to
// stderr unless --quiet, and exit codes are 0, 1 and 2.
func TestCommand(t *testing.T) {
	needTools(t, allTools...)
	bin := filepath.Join(t.TempDir(), "imagebuilder")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/imagebuilder").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	o := inputs(t, dir, "tar.xz")
	o.DiskID = 0xdeadbeef
	run := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	args := func(out string, extra ...string) []string {
		return append([]string{"disk", "--rootfs", o.RootFS, "--boot", o.BootDir, "--data", o.DataDir,
			"--version", o.Version, "--counter", "14", "--compatible", "rpi4", "--disk-id", "deadbeef",
			"--autoboot-size", "16M", "--boot-size", "40M", "--root-size", "64M", "--data-size", "16384K", "--out", out}, extra...)
	}
	epochEnv := []string{"SOURCE_DATE_EPOCH=1700000000"}

	cliOut := filepath.Join(dir, "cli.img")
	stdout, stderr, code := run(epochEnv, args(cliOut)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "disk id deadbeef") {
		t.Errorf("stdout: %q", stdout)
	}
	for _, phase := range []string{"staging root file system", "making root ext4", "hashing", "FAT32", "writing partition table"} {
		if !strings.Contains(stderr, phase) {
			t.Errorf("stderr lacks %q:\n%s", phase, stderr)
		}
	}
	o.Out = filepath.Join(dir, "lib.img")
	build(t, o)
	cli, _ := os.ReadFile(cliOut)
	lib, _ := os.ReadFile(o.Out)
	if !bytes.Equal(cli, lib) {
		t.Errorf("the command and the library wrote different cards")
	}

	_, stderr, code = run(epochEnv, args(filepath.Join(dir, "quiet.img"), "--quiet")...)
	if code != 0 || stderr != "" {
		t.Errorf("--quiet: exit %d, stderr %q", code, stderr)
	}

	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"help", nil, []string{"disk", "--help"}, 0, "Determinism"},
		{"no out", nil, []string{"disk", "--rootfs", o.RootFS, "--boot", o.BootDir, "--version", "1"}, 2, "--out is required"},
		{"bad size", nil, args(filepath.Join(dir, "x.img"), "--root-size", "12X"), 2, "--root-size"},
		{"bad disk id", nil, args(filepath.Join(dir, "x.img"), "--disk-id", "0"), 2, "--disk-id"},
		{"bad epoch", []string{"SOURCE_DATE_EPOCH=yesterday"}, args(filepath.Join(dir, "x.img")), 2, "SOURCE_DATE_EPOCH"},
		{"unknown flag", nil, []string{"disk", "--frobnicate"}, 2, "unknown flag"},
		{"build fails", nil, args(filepath.Join(dir, "x.img"), "--boot", dir), 1, "has no cmdline.txt"},
	} {
		stdout, stderr, code := run(c.env, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.want) {
			t.Errorf("%s: exit %d, want %d; output lacks %q:\n%s%s", c.name, code, c.code, c.want, stdout, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img")); err == nil {
		t.Errorf("a failed run left its output behind")
	}
}

// TestStageMetadata checks what staging keeps and clamps, without mkfs.
func TestStageMetadata(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("keeping the owners of the test archive needs root")
	}
	dir := t.TempDir()
	entries := append([]tarEntry{{name: "ro/", typ: '5', mode: 0o555}, {name: "ro/file", body: "x"}}, rootfsEntries...)
	tree, err := imagebuilder.Stage(context.Background(), writeArchive(t, dir, "tar", entries), filepath.Join(dir, "s"), imagebuilder.StageOptions{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	st := func(name string) os.FileInfo {
		fi, err := os.Lstat(filepath.Join(tree.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if got := st("bin/su").Mode(); got != 0o755|os.ModeSetuid {
		t.Errorf("bin/su mode: got %v", got)
	}
	if got := st("ro").Mode().Perm(); got != 0o555 {
		t.Errorf("read-only directory: got %v", got)
	}
	if got, want := st("etc/hostname").ModTime().Unix(), int64(1600000000); got != want {
		t.Errorf("mtime before the epoch: got %d, want %d", got, want)
	}
	if got, want := st("etc").ModTime(), epoch; !got.Equal(want) && got.Unix() != 1600000000 {
		t.Errorf("etc mtime: got %v", got)
	}
	if target, _ := os.Readlink(filepath.Join(tree.Dir, "etc/localtime")); target != "/usr/share/zoneinfo/UTC" {
		t.Errorf("absolute symlink target changed: %q", target)
	}
	// Caps.
	_, err = imagebuilder.Stage(context.Background(), writeArchive(t, dir, "tar", rootfsEntries), filepath.Join(dir, "s2"), imagebuilder.StageOptions{MaxEntries: 3})
	if err == nil || !strings.Contains(err.Error(), "more than 3 entries") {
		t.Errorf("entry cap: got %v", err)
	}
}
