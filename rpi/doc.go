// Package rpi is the Raspberry Pi as code: what the firmware reads from the
// card, what the kernel shows the running system, and how a one-shot trial
// boot is asked for. It is used by bootctl, by the on-device updater and by
// the virtual Pi, so the same rules hold on hardware and in a test.
//
// What the firmware reads. Partition 1 of the card is a small FAT partition
// holding autoboot.txt (at most AutobootMaxSize bytes). Its [all] section
// names the committed boot partition, its [tryboot] section the partition to
// try once; tryboot_a_b=1 makes the firmware read the normal config.txt of
// whichever partition it picked. Only [all], [none] and [tryboot] are
// honoured; settings under any other filter are ignored. Autoboot parses and
// renders the file without losing comments or unknown keys, and pads it to a
// fixed size so a commit is one in-place sector rewrite.
//
// What the system sees. The bootloader records, in the device tree's
// /chosen/bootloader node, whether the tryboot flag was set for this boot
// and which partition it booted from (Bootloader, read from
// /proc/device-tree/chosen/bootloader). A boot is a trial only when the flag
// was set and the booted partition is the [tryboot] one (Bootloader.OnTrial).
// Pi 5 bootloaders before 2024-05-13 report partition 0; the partition is
// then derived from the flag and autoboot.txt. The board comes from
// /proc/device-tree/compatible (ReadModel); the root filesystem from
// root= in /proc/cmdline.
//
// How a trial is armed and ends. An Armer sets the one-shot flag before a
// reboot: through the firmware mailbox (/dev/vcio, Mailbox) or through
// systemd's reboot parameter "0 tryboot" (RebootParam). The firmware clears
// the flag before it starts the trial, so any later reset, crash, watchdog
// bite or power cut boots the committed partition again. The trial ends in
// one of two ways: the updater commits it by rewriting autoboot.txt with the
// two partitions swapped, or it reboots without the flag and the committed
// partition comes back. The firmware keeps no boot counter and never writes
// the card. Preflight refuses to arm a trial on a bootloader that would not
// honour it (Pi 4 EEPROMs older than 2022-11-25).
//
// Every function that touches the device takes a root directory: "/" on a
// Pi, the virtual Pi's device directory in tests. Device paths such as
// BootloaderDir are relative to it.
package rpi
