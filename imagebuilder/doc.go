// Package imagebuilder builds, on the build host, the file system images of a
// release and the flashable SD card of a first install.
//
// The model: every input (a root file system as a directory or tar archive,
// a directory of boot files, an optional directory for the data partition) is
// first staged into a private directory, where it is validated entry by entry
// (no "..", no absolute names, no devices, no links followed while
// extracting) and where every modification time is clamped to the build
// epoch (SOURCE_DATE_EPOCH). File systems are then made by the real tools
// from the staged trees: mkfs.ext4 -d for ext4, mkfs.vfat plus mcopy for FAT.
// Every id those tools would draw at random (ext4 UUID and hash seed, FAT
// volume id, the MBR disk id) is derived from a digest of the staged
// content instead, and every time they would stamp is the epoch, so the same
// inputs and epoch give the same bytes on any host.
//
// The card follows the layout of package sdcard:
//
//	p1 autoboot  FAT16  autoboot.txt only, 512 bytes: [all] boot_partition=2, [tryboot] 3
//	p2 boot A    FAT32  boot files; cmdline.txt root=PARTUUID=<disk id>-05; ota-slot.json
//	p3 boot B    FAT32  formatted, empty: slot B holds no release yet
//	p5 root A    ext4   the root file system, no journal (mounted read-only)
//	p6 root B           zeros (a hole in the sparse image)
//	p7 data      ext4   journal, label "data", the --data files if any
//
// ota-slot.json of slot A records the version, release counter, board id and
// the sha256 and size of the whole p5 content, which is exactly the root image
// a release of the same rootfs, size and epoch carries.
//
// Nothing is written to the output path until the card is complete: it is
// built in a temporary file beside it and renamed at the end; on any error
// the temporary file and the staging directories are removed.
package imagebuilder
