// Package pisim is a virtual Raspberry Pi: a model of what the board's
// firmware does at power-on and at every reboot, run against an SD-card
// image, and of what the booted kernel then shows the operating system.
// The firmware cannot run off the board, so this model is what the update
// pipeline is tried against in CI, and what every end-to-end and power-cut
// test of the project boots.
//
// # The device directory
//
// A virtual Pi is a directory. Every on-device command takes it as its
// --root, so /dev/mmcblk0, /proc/... and /run/... resolve inside it:
//
//	DEVICE/sdcard.img                 the card image
//	DEVICE/dev/mmcblk0 -> ../sdcard.img
//	                                  the card as the OS sees it (boot mode SD;
//	                                  dev/sda for USB, dev/nvme0n1 for NVMe)
//	DEVICE/firmware/state.json        what the board keeps: model, EEPROM build
//	                                  date, capabilities, boot mode, the tryboot
//	                                  flag set through the mailbox, power state,
//	                                  boot counter, the last boot
//	DEVICE/firmware/boot.log          JSON lines, one per boot attempt
//	DEVICE/proc/device-tree/chosen/bootloader/*
//	                                  tryboot, partition, boot-mode, ... as the
//	                                  firmware hands them to the kernel
//	DEVICE/proc/device-tree/model, compatible
//	DEVICE/proc/cmdline               the booted partition's cmdline.txt
//	DEVICE/run/                       tmpfs: emptied at every boot and power-off
//	DEVICE/data/                      the mounted data partition: persists
//	                                  across boots; create fills it with the
//	                                  files of the card's ext4 p7
//
// proc/ and run/ exist only while the OS runs: they are emptied at power-off
// and rebuilt at every successful boot.
//
// # What a boot does
//
// Every power-on and every reboot runs the same steps, each taken from the
// Raspberry Pi documentation or the Pi kernel (the rule and its source are
// named beside the code that applies it):
//
//  1. The tryboot flag of this boot: on an orderly reboot it is set if
//     run/systemd/reboot-param holds " tryboot" (with the leading space) or
//     the mailbox flag is set; after a power cut or a watchdog bite it is
//     not. The firmware clears the stored flag before it starts, so any
//     later reset boots the committed partition again.
//  2. autoboot.txt is read from partition 1 (FAT, at most 512 bytes). If it
//     is missing, too large, unreadable or does not parse, the firmware
//     takes boot_partition=0. Otherwise its [all] boot_partition applies, overridden by the
//     [tryboot] section when the flag is set. A non-zero partition number
//     passed to reboot ("reboot 3") overrides both.
//  3. boot_partition 0 means the first bootable FAT partition among the
//     primary partitions 1 to 4. A partition is bootable when it is a primary
//     partition holding a readable FAT file system with cmdline.txt and a
//     kernel (kernel8.img, kernel_2712.img, kernel7l.img, kernel7.img,
//     kernel.img) or firmware (start4.elf, start.elf) file. The check is
//     deliberately lenient: a boot directory of config.txt, cmdline.txt and
//     kernel8.img boots.
//  4. If the chosen partition is not bootable, the attempt fails and the
//     firmware retries with the flag already cleared: the committed [all]
//     partition boots. If a clean attempt (no flag, no reboot partition)
//     fails, every retry would repeat it: the device is bricked and the boot
//     returns an error wrapping ErrNoBootablePartition. An unbootable
//     committed partition is not rescued by a walk to another one: whether
//     real firmware does is unverified (docs/tryboot.md), so the model takes the
//     strict reading, under which a commit that passes its power-cut tests
//     here is safe on either behaviour.
//  5. The kernel reads root= from cmdline.txt. If it names no partition of
//     the card, or one without an ext4 superblock, the kernel panics and
//     reboots without the flag (the model always reboots, as panic=N would
//     make it; without panic=N a real kernel hangs until a watchdog or a
//     power cut, and the attempt log says so). The next attempt is again a
//     clean one.
//  6. The booted system is presented: the device-tree bootloader properties
//     (rendered by rpi.Bootloader), the model, /proc/cmdline, an empty run/.
//
// The card is opened read-only: the firmware has no boot counter and never
// writes to the disk (raspberrypi/firmware issue 864), so no number of
// power cuts changes which slot boots.
//
// # Boards
//
// Options.Model picks the board: "pi4" (default), "pi5" or "pi3". A Pi 4
// EEPROM built before 2022-11-25 ignores [tryboot] (the flag is still
// reported) and lacks the TRYBOOT_A_B capability; a Pi 5 EEPROM built before
// 2024-05-13 reports chosen/bootloader/partition as 0; a Pi 3 has no EEPROM
// (no capabilities or build-timestamp properties) and boots only if
// bootcode.bin is on partition 1.
//
// # Power
//
// PowerOn boots a device that is off (power-on while it runs is a power cut
// followed by power-on). Reboot is an orderly reboot of a running system.
// PowerCut cuts power and powers on again: the mailbox flag is lost.
// Watchdog is a watchdog bite: a reset without the flag. PowerOff leaves the
// device off. Each call opens the device directory, acts and writes its
// state with a temp file and a rename, so separate processes may drive the
// same device one after the other.
package pisim
