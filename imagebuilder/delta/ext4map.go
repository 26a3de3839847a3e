package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// fileMap is where the files and directories of an ext4 image keep their
// data: path -> blocks. It is read on the build host with debugfs; the device
// never parses a file system.
type fileMap struct {
	files map[string]*fileBlocks
}

// fileBlocks is one file's data in logical order.
type fileBlocks struct {
	path string
	dir  bool
	size int64
	ext  []extent // allocated, initialised extents, in logical order
}

// extent maps file blocks [logical, logical+n) to image blocks [phys, phys+n).
type extent struct{ logical, phys, n int64 }

// blocks is the number of data blocks the file has on disk.
func (f *fileBlocks) blocks() int64 {
	var n int64
	for _, e := range f.ext {
		n += e.n
	}
	return n
}

// ext4BlockSize reads the block size from the superblock of an ext4 image.
func ext4BlockSize(img []byte) (int64, error) {
	if len(img) < 2048 || binary.LittleEndian.Uint16(img[1024+56:]) != 0xef53 {
		return 0, fmt.Errorf("not an ext4 image (no superblock magic)")
	}
	lg := binary.LittleEndian.Uint32(img[1024+24:])
	if lg > 6 {
		return 0, fmt.Errorf("ext4 block size 1024<<%d out of range", lg)
	}
	return 1024 << lg, nil
}

// ls -p lines: /inode/mode/uid/gid/name/size/
var lsLine = regexp.MustCompile(`^/(\d+)/(\d+)/\d+/\d+/(.*)/(\d*)/$`)

// ex -l lines: level/max entry/entries logical - logical physical - physical length [flags]
var exLine = regexp.MustCompile(`^\s*\d+/\s*\d+\s+\d+/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*(\S*)\s*$`)

// readFileMap lists every directory and regular file of the image with
// debugfs (one run per directory level, one for all the extents).
func readFileMap(ctx context.Context, img string) (*fileMap, error) {
	fm := &fileMap{files: map[string]*fileBlocks{}}
	inodes := map[string]int64{"/": 2}
	fm.files["/"] = &fileBlocks{path: "/", dir: true}
	level := []string{"/"}
	for depth := 0; len(level) > 0; depth++ {
		if depth > 256 {
			return nil, fmt.Errorf("%s: directories nested deeper than 256", img)
		}
		var script strings.Builder
		for _, d := range level {
			fmt.Fprintf(&script, "ls -p <%d>\n", inodes[d])
		}
		out, err := debugfs(ctx, img, script.String())
		if err != nil {
			return nil, err
		}
		var next []string
		for i, sec := range sections(out) {
			if i >= len(level) {
				break
			}
			dir := level[i]
			for _, l := range strings.Split(sec, "\n") {
				m := lsLine.FindStringSubmatch(l)
				if m == nil || m[3] == "." || m[3] == ".." || strings.ContainsAny(m[3], "/\x00") {
					continue
				}
				ino, _ := strconv.ParseInt(m[1], 10, 64)
				mode, _ := strconv.ParseUint(m[2], 8, 32)
				size, _ := strconv.ParseInt(m[4], 10, 64)
				p := path.Join(dir, m[3])
				switch mode & 0o170000 {
				case 0o040000:
					fm.files[p] = &fileBlocks{path: p, dir: true}
					inodes[p] = ino
					next = append(next, p)
				case 0o100000:
					fm.files[p] = &fileBlocks{path: p, size: size}
					inodes[p] = ino
				}
			}
		}
		level = next
	}
	paths := make([]string, 0, len(fm.files))
	for p := range fm.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var script strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&script, "ex -l <%d>\n", inodes[p])
	}
	out, err := debugfs(ctx, img, script.String())
	if err != nil {
		return nil, err
	}
	secs := sections(out)
	if len(secs) != len(paths) {
		return nil, fmt.Errorf("debugfs listed extents of %d files, asked for %d", len(secs), len(paths))
	}
	for i, sec := range secs {
		f := fm.files[paths[i]]
		for _, l := range strings.Split(sec, "\n") {
			m := exLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			if strings.Contains(m[6], "Uninit") {
				continue // reads as zeros
			}
			lo, _ := strconv.ParseInt(m[1], 10, 64)
			po, _ := strconv.ParseInt(m[3], 10, 64)
			n, _ := strconv.ParseInt(m[5], 10, 64)
			if n > 0 {
				f.ext = append(f.ext, extent{logical: lo, phys: po, n: n})
			}
		}
		sort.Slice(f.ext, func(a, b int) bool { return f.ext[a].logical < f.ext[b].logical })
	}
	return fm, nil
}

// sections splits debugfs -f output at its "debugfs: <command>" echo lines.
func sections(out string) []string {
	var secs []string
	for _, part := range strings.Split("\n"+out, "\ndebugfs: ")[1:] {
		if i := strings.IndexByte(part, '\n'); i >= 0 {
			secs = append(secs, part[i+1:])
		} else {
			secs = append(secs, "")
		}
	}
	return secs
}

// debugfs runs a read-only debugfs script on img and returns its output.
func debugfs(ctx context.Context, img, script string) (string, error) {
	f, err := os.CreateTemp("", "delta-debugfs-*.cmd")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(script)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-f", f.Name(), img)
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debugfs %s: %w: %s", img, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
