// Package updater is the on-device half of the update pipeline: the
// ota-updater service of a gateway. It installs a signed release into the
// slot that is not running, proves it healthy on a trial boot, and commits
// it or falls back.
//
// The runbook, enforced in this order by Update and Confirm:
//
//	check     refresh the signed metadata (package trust); pick the newest
//	          release for this board and channel whose counter is above the
//	          running one and not below the anti-rollback floor
//	fetch     download the payloads into the data partition, resuming, each
//	          capped at and verified against its signed length and hash
//	write     invalidate the other slot, then stream each payload
//	          (decompress -> hash -> write) into its partition and read the
//	          partition back: its hash must equal the signed image hash
//	journal   record "armed" with the verified manifest on the data partition
//	arm       set the one-shot tryboot flag (package bootctl) - last, so that
//	          a power cut at any earlier point leaves the boot selection alone
//	reboot    stop services gracefully and reboot into the trial
//	confirm   on the trial boot, run the release's health checks under a
//	          deadline: pass -> commit autoboot.txt, raise the floor, report;
//	          fail -> record, report, reboot without the flag: the firmware
//	          boots the committed slot again
//
// A power cut anywhere before "arm" leaves the running slot committed and
// the update is redone (downloads resume). A power cut during the trial, or
// a trial that hangs until the watchdog bites, boots the committed slot; the
// next Confirm finds the journal at "armed" on a non-trial boot and records
// the rollback. Every state file is replaced with temp file, fsync, rename
// and a directory fsync.
package updater
