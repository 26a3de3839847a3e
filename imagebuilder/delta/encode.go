// Package delta makes rootfs delta payloads on the build host: given the
// root image a device runs and the root image of a new release, it writes the
// delta document of updater/delta (the format and the device-side applier
// live there), compressed as one solid xz stream.
//
// How the delta is chosen. The encoder knows both images and reads, with
// debugfs, where every file and directory of each keeps its data. Then, per
// block of the new image (the file system's block size, 4 KiB for the images
// imagebuilder makes):
//   - blocks of a file or directory whose content changed and that exists in
//     the old image under the same path (or, for a regular file, the same
//     name up to digits, as libfoo.so.1.2.3 -> libfoo.so.1.2.4) become a
//     PATCH op: bsdiff against the old version's blocks, read from the
//     running slot;
//   - zero blocks become ZERO;
//   - blocks equal to a block anywhere in the old image become COPY, so
//     unchanged files are found wherever the new layout put them, and runs
//     are kept when consecutive blocks continue a run of the old image;
//   - what is left (new files, file system metadata) becomes DATA.
//
// The document is then compressed by xz as one solid stream: literal bytes
// and patch differences of all files share the dictionary. The file maps are
// only hints: every op is computed from the bytes of the images, so a delta
// is correct whatever the file system holds (an image the project did not
// lay out works too, only less well), and the device needs no file system
// parser. The output depends only on the two images.
package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"syscall"

	"github.com/healthguard/gateway-ota/imagebuilder/internal/xz"
	format "github.com/healthguard/gateway-ota/updater/delta"
)

// Options tune Encode. The zero value is ready to use.
type Options struct {
	// Workers bounds the patches computed at once; 0 means GOMAXPROCS.
	Workers int
	// Logf, if not nil, receives progress lines.
	Logf func(format string, args ...any)
}

// Stats say what a delta is made of: target bytes per op kind.
type Stats struct {
	Zero, Copy, Data, Patch    int64
	CopyOps, DataOps, PatchOps int
	// Ranges and SourceBytes: the source ranges the device verifies.
	Ranges      int
	SourceBytes int64
	// Document is the size of the uncompressed delta document.
	Document int64
}

// maxPatchFile bounds the old and new sizes of a file patched with bsdiff
// (its suffix array takes 8 bytes per old byte on the build host).
const maxPatchFile = 256 << 20

// rangeGap: source ranges closer than this are verified as one.
const rangeGap = 64 << 10

// image is a read-only mapping of an image file.
type image struct {
	b []byte
}

func mapImage(p string) (*image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return &image{}, nil
	}
	if st.Size() > format.MaxImageSize {
		return nil, fmt.Errorf("%s: %d bytes, more than a delta can carry", p, st.Size())
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", p, err)
	}
	return &image{b: b}, nil
}

func (im *image) close() {
	if im.b != nil {
		syscall.Munmap(im.b)
	}
}

// Encode writes to w the delta document that turns the image oldImg into
// newImg.
func Encode(ctx context.Context, oldImg, newImg string, w io.Writer, opts Options) (Stats, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var st Stats
	oldIm, err := mapImage(oldImg)
	if err != nil {
		return st, err
	}
	defer oldIm.close()
	newIm, err := mapImage(newImg)
	if err != nil {
		return st, err
	}
	defer newIm.close()
	old, nw := oldIm.b, newIm.b

	bs := int64(4096)
	var oldMap, newMap *fileMap
	obs, err1 := ext4BlockSize(old)
	nbs, err2 := ext4BlockSize(nw)
	if err1 == nil && err2 == nil && obs == nbs {
		bs = nbs
		if oldMap, err = readFileMap(ctx, oldImg); err != nil {
			return st, err
		}
		if newMap, err = readFileMap(ctx, newImg); err != nil {
			return st, err
		}
		logf("delta: %d files in the old image, %d in the new", len(oldMap.files), len(newMap.files))
	} else {
		logf("delta: not two ext4 images of one block size (%v, %v): blocks only", err1, err2)
	}

	p := &planner{old: old, nw: nw, bs: bs}
	p.indexOld()
	if newMap != nil {
		p.markPatches(oldMap, newMap)
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	p.plan()
	ranges, err := p.ranges()
	if err != nil {
		return st, err
	}
	st.Ranges = len(ranges)
	for _, r := range ranges {
		st.SourceBytes += r.Len
	}
	h := format.Header{DataCodec: format.DataCodecRaw, SrcSize: int64(len(old)), DstSize: int64(len(nw)), Ranges: ranges,
		SrcSHA256: sha256.Sum256(old), DstSHA256: sha256.Sum256(nw)}
	cw := &countWriter{w: w}
	dw, err := format.NewWriter(cw, h)
	if err != nil {
		return st, err
	}
	patches, patchDone, stopPatches := p.computePatches(ctx, workers)
	// Before the images are unmapped (deferred above), whatever the return.
	defer stopPatches()
	for i, op := range p.ops {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		switch op.kind {
		case format.OpZero:
			st.Zero += op.n
			err = dw.Zero(op.n)
		case format.OpCopy:
			st.Copy += op.n
			st.CopyOps++
			err = dw.Copy(op.src, op.n)
		case format.OpData:
			st.Data += op.n
			st.DataOps++
			err = dw.Data(nw[op.dst : op.dst+op.n])
		case format.OpPatch:
			st.Patch += op.n
			st.PatchOps++
			var res patchResult
			select {
			case res = <-patches[i]:
			case <-ctx.Done():
				return st, ctx.Err()
			}
			patchDone()
			if err = dw.Patch(p.patchFiles[op.file].oldExt, op.n, res.start); err != nil {
				break
			}
			for _, c := range res.ctrls {
				if err = dw.Control(c.diff, c.extra, c.seek); err != nil {
					break
				}
			}
		}
		if err != nil {
			return st, err
		}
	}
	if err := dw.Close(); err != nil {
		return st, err
	}
	st.Document = cw.n
	logf("delta: zero %d, copy %d in %d ops, patch %d in %d ops, data %d in %d ops; %d source ranges of %d bytes; document %d bytes",
		st.Zero, st.Copy, st.CopyOps, st.Patch, st.PatchOps, st.Data, st.DataOps, st.Ranges, st.SourceBytes, st.Document)
	return st, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// planner decides the op of every block of the new image.
type planner struct {
	old, nw []byte
	bs      int64
	index   map[uint64]int64 // hash of an old block -> its first block number
	seed    maphash.Seed
	owner   []int32 // new block -> patch file index, or -1
	// patchFiles are the changed files patched against their old version.
	patchFiles []patchFile
	ops        []op
}

type patchFile struct {
	oldExt []format.Extent // old version's blocks in the source, in file order
}

type op struct {
	kind   int
	dst, n int64
	src    int64 // COPY
	file   int   // PATCH
}

func (p *planner) blocks(b []byte) int64 { return int64(len(b)) / p.bs }

func (p *planner) block(b []byte, i int64) []byte { return b[i*p.bs : (i+1)*p.bs] }

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// indexOld maps the hash of every non-zero old block to its first position.
func (p *planner) indexOld() {
	p.seed = maphash.MakeSeed()
	n := p.blocks(p.old)
	p.index = make(map[uint64]int64, n/2)
	for i := int64(0); i < n; i++ {
		b := p.block(p.old, i)
		if isZero(b) {
			continue
		}
		k := maphash.Bytes(p.seed, b)
		if _, ok := p.index[k]; !ok {
			p.index[k] = i
		}
	}
}

// lookup returns an old block equal to new block i, preferring want.
func (p *planner) lookup(i, want int64) (int64, bool) {
	b := p.block(p.nw, i)
	if want >= 0 && want < p.blocks(p.old) && string(p.block(p.old, want)) == string(b) {
		return want, true
	}
	j, ok := p.index[maphash.Bytes(p.seed, b)]
	if ok && string(p.block(p.old, j)) == string(b) {
		return j, true
	}
	return 0, false
}

var digits = regexp.MustCompile(`[0-9]+`)

// markPatches chooses the changed files to patch and marks their new blocks.
func (p *planner) markPatches(oldMap, newMap *fileMap) {
	p.owner = make([]int32, p.blocks(p.nw))
	for i := range p.owner {
		p.owner[i] = -1
	}
	// Old regular files by directory and name without digits, for renamed
	// versions.
	similar := map[string][]*fileBlocks{}
	for _, f := range oldMap.files {
		if !f.dir {
			k := path.Dir(f.path) + "/" + digits.ReplaceAllString(path.Base(f.path), "#")
			similar[k] = append(similar[k], f)
		}
	}
	paths := make([]string, 0, len(newMap.files))
	for q := range newMap.files {
		paths = append(paths, q)
	}
	sort.Strings(paths)
	for _, q := range paths {
		nf := newMap.files[q]
		of := oldMap.files[q]
		if of == nil && !nf.dir {
			k := path.Dir(q) + "/" + digits.ReplaceAllString(path.Base(q), "#")
			var best *fileBlocks
			for _, c := range similar[k] {
				d := abs(c.size - nf.size)
				if best == nil || d < abs(best.size-nf.size) || (d == abs(best.size-nf.size) && c.path < best.path) {
					best = c
				}
			}
			of = best
		}
		if of == nil || of.dir != nf.dir || len(nf.ext) == 0 || len(of.ext) == 0 {
			continue
		}
		if of.blocks()*p.bs > maxPatchFile || nf.blocks()*p.bs > maxPatchFile {
			continue
		}
		if !p.validExtents(nf, p.nw) || !p.validExtents(of, p.old) {
			continue
		}
		// Unchanged content, or every block found in the old image: COPY
		// does it.
		if p.allInOld(nf) {
			continue
		}
		idx := int32(len(p.patchFiles))
		var pf patchFile
		for _, e := range of.ext {
			pf.oldExt = append(pf.oldExt, format.Extent{Off: e.phys * p.bs, Len: e.n * p.bs})
		}
		p.patchFiles = append(p.patchFiles, pf)
		for _, e := range nf.ext {
			for b := e.phys; b < e.phys+e.n; b++ {
				p.owner[b] = idx
			}
		}
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func (p *planner) validExtents(f *fileBlocks, img []byte) bool {
	n := p.blocks(img)
	for _, e := range f.ext {
		if e.phys < 0 || e.n <= 0 || e.phys > n-e.n {
			return false
		}
	}
	return true
}

func (p *planner) allInOld(f *fileBlocks) bool {
	for _, e := range f.ext {
		for b := e.phys; b < e.phys+e.n; b++ {
			if isZero(p.block(p.nw, b)) {
				continue
			}
			if _, ok := p.lookup(b, -1); !ok {
				return false
			}
		}
	}
	return true
}

// plan turns the blocks of the new image into ops.
func (p *planner) plan() {
	nb := p.blocks(p.nw)
	add := func(o op) {
		if k := len(p.ops) - 1; k >= 0 {
			last := &p.ops[k]
			if last.kind == o.kind && last.dst+last.n == o.dst {
				switch o.kind {
				case format.OpZero, format.OpData:
					last.n += o.n
					return
				case format.OpCopy:
					if last.src+last.n == o.src {
						last.n += o.n
						return
					}
				case format.OpPatch:
					if last.file == o.file {
						last.n += o.n
						return
					}
				}
			}
		}
		p.ops = append(p.ops, o)
	}
	want := int64(-1) // the old block that would continue the last copy
	for i := int64(0); i < nb; i++ {
		dst := i * p.bs
		if p.owner != nil && p.owner[i] >= 0 {
			add(op{kind: format.OpPatch, dst: dst, n: p.bs, file: int(p.owner[i])})
			want = -1
			continue
		}
		if isZero(p.block(p.nw, i)) {
			add(op{kind: format.OpZero, dst: dst, n: p.bs})
			continue
		}
		if j, ok := p.lookup(i, want); ok {
			add(op{kind: format.OpCopy, dst: dst, n: p.bs, src: j * p.bs})
			want = j + 1
			continue
		}
		add(op{kind: format.OpData, dst: dst, n: p.bs})
		want = -1
	}
	if tail := int64(len(p.nw)) - nb*p.bs; tail > 0 {
		add(op{kind: format.OpData, dst: nb * p.bs, n: tail})
	}
}

// ranges merges the source bytes the ops read into hashed ranges.
func (p *planner) ranges() ([]format.Range, error) {
	var ext []format.Extent
	used := map[int]bool{}
	for _, o := range p.ops {
		switch o.kind {
		case format.OpCopy:
			ext = append(ext, format.Extent{Off: o.src, Len: o.n})
		case format.OpPatch:
			if !used[o.file] {
				used[o.file] = true
				ext = append(ext, p.patchFiles[o.file].oldExt...)
			}
		}
	}
	sort.Slice(ext, func(i, j int) bool { return ext[i].Off < ext[j].Off })
	for gap := int64(rangeGap); ; gap *= 2 {
		var rs []format.Range
		for _, e := range ext {
			if k := len(rs) - 1; k >= 0 && e.Off <= rs[k].End()+gap {
				rs[k].Len = max(rs[k].End(), e.Off+e.Len) - rs[k].Off
				continue
			}
			rs = append(rs, format.Range{Off: e.Off, Len: e.Len})
		}
		if len(rs) > format.MaxRanges {
			continue
		}
		var wg sync.WaitGroup
		for i := range rs {
			wg.Add(1)
			go func(r *format.Range) {
				defer wg.Done()
				r.SHA256 = sha256.Sum256(p.old[r.Off:r.End()])
			}(&rs[i])
			if i%64 == 63 {
				wg.Wait()
			}
		}
		wg.Wait()
		return rs, nil
	}
}

type patchResult struct {
	start int64
	ctrls []control
}

// computePatches runs bsdiff for the PATCH ops on workers goroutines, in op
// order, at most 2*workers ahead of the writer. The channel of op i yields
// its result; the writer calls done after each, which lets the next start.
// stop cancels the patches not started and waits for the running ones and
// the dispatcher to end: after it, no goroutine reads the images.
func (p *planner) computePatches(ctx context.Context, workers int) (results map[int]chan patchResult, done, stop func()) {
	out := map[int]chan patchResult{}
	var order []int
	for i, o := range p.ops {
		if o.kind == format.OpPatch {
			out[i] = make(chan patchResult, 1)
			order = append(order, i)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2*workers)
	run := make(chan struct{}, workers)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, i := range order {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				select {
				case run <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-run }()
				if ctx.Err() != nil {
					return
				}
				o := p.ops[i]
				var old []byte
				for _, e := range p.patchFiles[o.file].oldExt {
					old = append(old, p.old[e.Off:e.Off+e.Len]...)
				}
				start, ctrls := bsdiff(newSuffixArray(old), p.nw[o.dst:o.dst+o.n])
				out[i] <- patchResult{start: start, ctrls: ctrls}
			}(i)
		}
	}()
	return out, func() { <-sem }, func() { cancel(); wg.Wait() }
}

// XZArgs are the xz options of delta payloads: one block (the device checks
// its dictionary), preset 9 extreme, and a dictionary the device's memory
// budget allows (updater/delta.MaxDictSize).
var XZArgs = []string{"-T1", "--check=crc64", "--lzma2=preset=9e,dict=16MiB"}

// EncodeFile writes the delta payload turning oldImg into newImg to out: the
// delta document compressed with xz(1).
func EncodeFile(ctx context.Context, oldImg, newImg, out string, opts Options) (Stats, error) {
	f, err := os.Create(out)
	if err != nil {
		return Stats{}, err
	}
	cmd := xz.Command(ctx, append(append([]string{}, XZArgs...), "-c")...)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		f.Close()
		return Stats{}, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		os.Remove(out)
		return Stats{}, fmt.Errorf("xz not found (install the xz-utils package): %w", err)
	}
	st, err := Encode(ctx, oldImg, newImg, in, opts)
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("xz: %w: %s", werr, stderr.String())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return st, err
	}
	return st, nil
}
