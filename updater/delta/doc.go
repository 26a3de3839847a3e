// Package delta is the rootfs delta payload: its format, its parser and its
// applier. It is the device side: it needs no file system parser, no Docker and
// no build-side package. The encoder lives in imagebuilder/delta.
//
// # The model
//
// A delta turns one exact source image (the root image of the running slot)
// into one exact target image (the root image of the release), written into
// the inactive slot. The applier reads only the source and the delta, writes
// only the target, and streams: its memory does not grow with the images
// (a few MiB of buffers plus the payload codec's dictionary).
//
// Trust: the payload file is bound by its signed hash and length in the
// release manifest, which the caller checks while downloading. The delta
// itself is still parsed as hostile input (P3, P6): every size and offset is
// 64-bit and checked (no negative value, no overflow, no read outside the
// source, no write outside the target), and a truncated stream is an error.
//
// Two passes:
//  1. Before any byte is written, every source range the delta will read is
//     hashed and compared with the SHA-256 the delta carries for it. A
//     mismatch returns an error wrapping ErrSourceMismatch: the running slot
//     is not the base the delta was made for (modified, corrupted, another
//     build), and the caller installs the full payload instead.
//  2. The operations write the target from offset 0 to its end, in order.
//     Each source read must lie inside the verified ranges.
//
// The finished target is not trusted because the delta applied: the caller
// hashes the written region and compares it with the signed image hash
// before it arms the trial boot (P4).
//
// Resume: an interrupted apply is restarted from the beginning. That is
// correct because the applier never reads what it writes (the target is the
// inactive slot, the source the active one), and cheap because the payload
// download, the slow part, resumes where it stopped.
//
// # Format, version 1
//
// A delta payload file is the payload codec (the manifest's "codec", "xz")
// applied to the delta document below. The document's own data streams are
// raw (DataCodecRaw): the payload codec compresses the whole document as one
// solid stream, so literal bytes and patch differences share one dictionary.
// A later version may name another data codec in the header.
//
// All integers are little-endian and fixed width: u8, u32, u64, i64.
//
//	header:
//	  magic      [8]byte  "OTADELTA"
//	  version    u32      1
//	  dataCodec  u32      0 = raw
//	  srcSize    u64      size of the source image
//	  srcSHA256  [32]byte hash of the whole source image (its identity)
//	  dstSize    u64      size of the target image
//	  dstSHA256  [32]byte hash of the whole target image
//	  nRanges    u64      at most MaxRanges
//	  nRanges x { off u64, len u64, sha256 [32]byte }
//	                       source ranges, sorted, not overlapping, len > 0,
//	                       off+len <= srcSize
//	ops, each a u8 kind and its fields, writing the target in order:
//	  1 ZERO   n u64                    n zero bytes
//	  2 COPY   off u64, n u64           n bytes of the source from off
//	  3 DATA   n u64, n bytes           n literal bytes
//	  4 PATCH  nExt u32, nExt x {off u64, len u64}, n u64, pos u64, controls
//	                                     n bytes made from "old", the
//	                                     concatenation of the source extents
//	                                     (at most MaxExtents), by bsdiff
//	                                     controls starting at old position
//	                                     pos, until n bytes are made:
//	           add u64, extra u64, seek i64, diff segments, extra bytes
//	             add: add bytes old[pos+i] + diff[i] (mod 256), pos += add,
//	               the differences as segments {skip u32, lit u32, lit
//	               bytes} until add bytes are made: skip bytes of old as
//	               they are (difference 0), then lit bytes of old plus the
//	               lit difference bytes; skip+lit > 0 and within add
//	             extra: extra bytes copied as they are
//	             then pos += seek; every control makes at least one byte
//	  0 END                              the target is complete: the written
//	                                     length must equal dstSize and the
//	                                     document must end here
//
// Every op's n is > 0 and fits in what is left of the target. Every source
// byte a COPY or PATCH reads lies inside the header's ranges.
package delta
