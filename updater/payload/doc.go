// Package payload moves a release's payload from the repository onto the inactive
// slot: a resumable, verified download, then a streaming decompress-hash-write into
// the partition with bounded memory, then a read-back check.
//
// The runbook of a full install, in the order the updater runs it (threats.md rows
// in brackets):
//
//  1. Download: [Downloader.Fetch] appends to dst+".part", resuming with a Range
//     request guarded by If-Range, caps the body at the signed length [S8] and hashes
//     it while writing. A stall longer than StallTimeout ends the attempt with
//     [ErrStalled]; the next attempt resumes. Only a file whose length and SHA-256
//     equal the signed ones is fsynced and renamed to dst [S1, S4]; a mismatch removes
//     the .part [ErrDigestMismatch].
//  2. Verify: the caller opens dst once and wraps it in [CheckedReader], so the
//     compressed bytes are hashed again as they are consumed: the file that was
//     verified is the file that is installed, never reopened by path [P5].
//  3. Write: [WriteImage] decompresses (xz or none), hashes the output and writes it
//     at the slot's offset with large sequential writes. The output is bounded by the
//     signed image size before anything is written and while writing [P2]; a longer
//     stream stops at once with [ErrTooLarge], a shorter one ends with [ErrShort].
//  4. Sync: WriteImage syncs the destination when it can.
//  5. Read back: [VerifyRegion] re-reads the written region (dropping it from the
//     page cache first when the destination is a file, so the medium is read) and
//     compares its SHA-256 with the signed one [P4]. Only then may the caller arm
//     tryboot.
//
// A power cut at any step leaves the active slot untouched [F1]: steps 1-5 only
// write the download directory and the inactive slot. Rerunning the runbook resumes
// the download and rewrites the slot from the start [F6].
//
// # xz payloads
//
// The xz container is parsed here (stream header and footer, block headers, index,
// CRC32/CRC64/SHA-256 checks) and the LZMA2 data is decoded by this package's own
// LZMA decoder (lzma2.go), which decodes a block straight into its output buffer
// without allocating. Blocks are independent, so a payload made of many
// blocks (xz -T2 or more, or --block-size) is decoded two blocks at a time, in
// parallel with hashing and writing; blocks of at most [ParallelBlockSize] bytes
// take this path. Larger blocks (a single-block stream from xz -T1) are decoded in
// order by one goroutine, through a sliding window. Only the LZMA2 filter is accepted, with a dictionary of at
// most [MaxDictSize] bytes (presets -0 to -7). Peak memory stays below 64 MiB
// whatever the image size: at most 24 MiB of block buffers, plus a sliding window
// (dictionary plus ParallelBlockSize) for blocks too large for the parallel path.
package payload

import "errors"

// Sentinel errors, for errors.Is. Each names a decision of the caller.
var (
	// ErrDigestMismatch: the bytes do not hash to the signed SHA-256. Discard them
	// and retry from scratch later.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrTooLarge: more bytes than the signed length, or an image larger than its
	// partition. Report; retrying the same release will not help.
	ErrTooLarge = errors.New("larger than signed")
	// ErrStalled: no byte arrived for StallTimeout. Retry later; the download resumes.
	ErrStalled = errors.New("download stalled")
	// ErrShort: the stream ended before the signed length.
	ErrShort = errors.New("shorter than signed")
)
