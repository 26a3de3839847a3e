package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/pisim"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitBricked = 3
)

const rootLong = `pisim is a virtual Raspberry Pi for trying an update pipeline without the
board. It models what the Pi firmware does at power-on and at every reboot
(autoboot.txt on partition 1, the one-shot tryboot flag, boot_partition, the
partition walk, cmdline.txt's root=) against an SD-card image, and presents
what the kernel would to the OS under a device directory. On-device commands
run against it with --root DEVICE.

The device directory:

  DEVICE/sdcard.img                  the card image
  DEVICE/dev/mmcblk0 -> ../sdcard.img
                                     the card (dev/sda for --boot-mode usb,
                                     dev/nvme0n1 for nvme)
  DEVICE/firmware/state.json         model, EEPROM date, capabilities, boot
                                     mode, mailbox tryboot flag, power state,
                                     boot counter, last boot
  DEVICE/firmware/boot.log           JSON lines, one per boot attempt
  DEVICE/proc/device-tree/chosen/bootloader/*
                                     tryboot, partition, boot-mode,
                                     capabilities, build-timestamp
  DEVICE/proc/device-tree/model, compatible
  DEVICE/proc/cmdline                the booted partition's cmdline.txt
  DEVICE/run/                        tmpfs: emptied at every boot
                                     (run/systemd/reboot-param arms a trial:
                                     "0 tryboot")
  DEVICE/data/                       the data partition: kept across boots

Boots: "boot" powers on, "reboot" is an orderly reboot (honours
run/systemd/reboot-param and the mailbox flag), "power-cut" cuts power and
powers on (no flag, mailbox flag lost), "watchdog" is a reset without the
flag.

Exit codes: 0 booted (or done), 1 error, 2 usage, 3 the device is bricked
(no bootable partition).`

// runError marks errors of a command's work, as opposed to usage errors.
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "pisim: %v\n", err)
	var re runError
	switch {
	case errors.Is(err, pisim.ErrNoBootablePartition):
		return exitBricked
	case errors.As(err, &re):
		return exitError
	default:
		fmt.Fprintln(stderr, "run 'pisim --help' for usage")
		return exitUsage
	}
}

func newRootCmd(stdout io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "pisim",
		Short:         "A virtual Raspberry Pi that boots SD-card images the way the firmware does",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(
		createCmd(stdout),
		bootCmd(stdout, "boot", "Power the device on",
			`Power the device on and boot it. A device that runs is power-cut first
(the boot's cause is then "power-cut").`, (*pisim.Device).PowerOn),
		bootCmd(stdout, "reboot", "Orderly reboot of the running device",
			`Reboot the running system in order. The tryboot flag is set for this boot
if run/systemd/reboot-param contains " tryboot" (with the leading space, as
the Pi kernel requires: write "0 tryboot") or the mailbox flag is set; a
leading partition number other than 0 overrides autoboot.txt. The firmware
clears the flag before it starts.`, (*pisim.Device).Reboot),
		bootCmd(stdout, "power-cut", "Cut the power and power on again",
			`Cut the power and power on again: no tryboot flag, the mailbox flag is
lost, run/ is emptied. The committed partition boots.`, (*pisim.Device).PowerCut),
		bootCmd(stdout, "watchdog", "Watchdog bite: reset without the tryboot flag",
			`Reset the running device as the hardware watchdog does: the boot carries
no tryboot flag, so the committed partition boots.`, (*pisim.Device).Watchdog),
		powerOffCmd(),
		mailboxCmd(stdout),
		statusCmd(stdout),
		logCmd(stdout),
	)
	return root
}

func createCmd(stdout io.Writer) *cobra.Command {
	var image, model, eeprom, mode string
	var move bool
	c := &cobra.Command{
		Use:   "create DEVICE --image CARD.img",
		Short: "Make a device directory around an SD-card image",
		Long: `Make the device directory DEVICE (new or empty) around a copy of the
card image (sparse-aware: holes stay holes; a reflink where the file system
has them), or the image itself with --move. The device is left powered off;
run "pisim boot DEVICE" to power it on.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := pisim.Options{Model: model, Move: move}
			if eeprom != "" {
				t, err := time.Parse(time.DateOnly, eeprom)
				if err != nil {
					return fmt.Errorf("--eeprom %q: want a date like 2024-06-01", eeprom)
				}
				opts.EEPROM = t
			}
			modes := map[string]rpi.BootMode{"sd": rpi.BootModeSD, "usb": rpi.BootModeUSBMSD, "nvme": rpi.BootModeNVMe}
			m, ok := modes[mode]
			if !ok {
				return fmt.Errorf("--boot-mode %q: want sd, usb or nvme", mode)
			}
			opts.BootMode = m
			if image == "" {
				return errors.New("--image is required")
			}
			d, err := pisim.Create(args[0], image, opts)
			if err != nil {
				return runError{err}
			}
			st, err := d.State()
			if err != nil {
				return runError{err}
			}
			fmt.Fprintf(stdout, "created %s: %s, boot mode %v, powered off\n", d.Root(), modelLine(st), st.BootMode)
			return nil
		},
	}
	c.Flags().StringVar(&image, "image", "", "SD-card image to put in the device (required)")
	c.Flags().StringVar(&model, "model", pisim.DefaultModel, "board: "+strings.Join(pisim.Models(), ", "))
	c.Flags().StringVar(&eeprom, "eeprom", "", "bootloader EEPROM build date, YYYY-MM-DD (default "+pisim.DefaultEEPROM.Format(time.DateOnly)+"; Pi 4 before 2022-11-25 ignores [tryboot], Pi 5 before 2024-05-13 reports partition 0)")
	c.Flags().StringVar(&mode, "boot-mode", "sd", "medium the card boots from: sd, usb or nvme")
	c.Flags().BoolVar(&move, "move", false, "move the image into the device instead of copying it")
	return c
}

func bootCmd(stdout io.Writer, use, short, long string, f func(*pisim.Device) (pisim.Boot, error)) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   use + " DEVICE",
		Short: short,
		Long: long + `

Prints one line: the boot counter, its cause, the tryboot flag, the booted
partition and slot and the root= the kernel mounted; with --json the whole
boot with every attempt. Exit code 3 if nothing boots.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := pisim.Open(args[0])
			if err != nil {
				return runError{err}
			}
			b, err := f(d)
			if len(b.Attempts) == 0 && err != nil {
				return runError{err}
			}
			if asJSON {
				out := struct {
					pisim.Boot
					Error string `json:"error,omitempty"`
				}{Boot: b}
				if err != nil {
					out.Error = err.Error()
				}
				if jerr := writeJSON(stdout, out); jerr != nil {
					return runError{jerr}
				}
			} else {
				fmt.Fprintln(stdout, bootLine(b, err))
			}
			if err != nil {
				return runError{err}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the boot as JSON")
	return c
}

func powerOffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "power-off DEVICE",
		Short: "Remove the power",
		Long:  `Remove the power: the mailbox flag, run/ and proc/ are gone. "pisim boot" powers on again.`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := pisim.Open(args[0])
			if err != nil {
				return runError{err}
			}
			if err := d.PowerOff(); err != nil {
				return runError{err}
			}
			return nil
		},
	}
}

func mailboxCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "mailbox DEVICE [arm|disarm]",
		Short: "Set, clear or show the tryboot flag in the firmware mailbox",
		Long: `Stand in for the firmware mailbox (/dev/vcio, tag 0x00038064): "arm" sets
the one-shot tryboot flag, "disarm" clears it, no argument shows it. The flag
survives an orderly reboot (it then applies) but not a power cut. Only a
running device has a mailbox.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 && args[1] != "arm" && args[1] != "disarm" {
				return fmt.Errorf("mailbox: %q: want arm or disarm", args[1])
			}
			d, err := pisim.Open(args[0])
			if err != nil {
				return runError{err}
			}
			mb := d.Mailbox()
			if len(args) == 2 {
				if args[1] == "arm" {
					err = mb.Arm()
				} else {
					err = mb.Disarm()
				}
				if err != nil {
					return runError{err}
				}
			}
			armed, err := mb.Armed()
			if err != nil {
				return runError{err}
			}
			fmt.Fprintf(stdout, "tryboot flag %s\n", map[bool]string{true: "set", false: "clear"}[armed])
			return nil
		},
	}
}

func statusCmd(stdout io.Writer) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status DEVICE",
		Short: "Show the board, power state, last boot and any pending trial",
		Long: `Show the board and its EEPROM, the power state, the boot counter, the last
boot (partition, slot, tryboot flag, kernel command line) and whether the next
orderly reboot would be a trial (through run/systemd/reboot-param or the
mailbox flag).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := pisim.Open(args[0])
			if err != nil {
				return runError{err}
			}
			s, err := d.Status()
			if err != nil {
				return runError{err}
			}
			if asJSON {
				if err := writeJSON(stdout, s); err != nil {
					return runError{err}
				}
				return nil
			}
			fmt.Fprintf(stdout, "device:  %s\n", d.Root())
			fmt.Fprintf(stdout, "board:   %s, boot mode %v\n", modelLine(s.State), s.BootMode)
			fmt.Fprintf(stdout, "power:   %s\n", s.Power)
			fmt.Fprintf(stdout, "boots:   %d\n", s.BootCounter)
			if s.LastBoot != nil {
				fmt.Fprintf(stdout, "last:    %s\n", bootLine(*s.LastBoot, nil))
				if s.Power == pisim.PowerRunning {
					fmt.Fprintf(stdout, "cmdline: %s\n", s.LastBoot.Cmdline)
				}
			}
			if s.Bricked != "" {
				fmt.Fprintf(stdout, "bricked: %s\n", s.Bricked)
			}
			if s.Power == pisim.PowerRunning {
				var via []string
				if armed, _ := d.Mailbox().Armed(); armed {
					via = append(via, "mailbox flag")
				}
				if rpi.RebootArgumentArms(s.RebootParam) {
					via = append(via, fmt.Sprintf("reboot-param %q", s.RebootParam))
				}
				pending := "none"
				if s.PendingTryboot {
					pending = "tryboot on the next reboot (" + strings.Join(via, ", ") + ")"
				}
				fmt.Fprintf(stdout, "pending: %s\n", pending)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return c
}

func logCmd(stdout io.Writer) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "log DEVICE",
		Short: "Show every boot attempt",
		Long: `Show firmware/boot.log: one line per boot attempt with the boot counter,
the cause, the tryboot flag, what came of reading autoboot.txt, the partition
chosen and why, the root= and the result (booted, fallback to a next attempt,
or failed), with the reason. --json prints the raw JSON lines.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := pisim.Open(args[0])
			if err != nil {
				return runError{err}
			}
			log, err := d.Log()
			if err != nil {
				return runError{err}
			}
			for _, a := range log {
				if asJSON {
					b, err := json.Marshal(a)
					if err != nil {
						return runError{err}
					}
					fmt.Fprintf(stdout, "%s\n", b)
					continue
				}
				fmt.Fprintln(stdout, attemptLine(a))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return c
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func flag01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bootLine is the one-line summary of a boot.
func bootLine(b pisim.Boot, err error) string {
	head := fmt.Sprintf("boot %d (%s): ", b.Counter, b.Cause)
	if b.Partition == 0 {
		if err == nil && len(b.Attempts) > 0 {
			err = errors.New(b.Attempts[len(b.Attempts)-1].Reason)
		}
		return head + fmt.Sprintf("bricked: %v", err)
	}
	s := head + fmt.Sprintf("tryboot=%d partition=%d", flag01(b.Tryboot), b.Partition)
	if b.ReportedPartition != b.Partition {
		s += fmt.Sprintf(" (reported as %d)", b.ReportedPartition)
	}
	if b.Slot != "" {
		s += " slot " + b.Slot
	}
	s += " root=" + b.Root
	if n := len(b.Attempts); n > 1 {
		s += fmt.Sprintf(" after %d attempts (first: %s)", n, b.Attempts[0].Reason)
	}
	return s
}

// attemptLine is one boot attempt, for pisim log.
func attemptLine(a pisim.Attempt) string {
	s := fmt.Sprintf("boot %d.%d (%s): tryboot=%d autoboot %s; %s", a.Boot, a.Attempt, a.Cause, flag01(a.Tryboot), a.Autoboot, a.Selected)
	if a.RebootPartition != 0 {
		s += fmt.Sprintf(" (reboot partition %d)", a.RebootPartition)
	}
	if a.Partition != 0 {
		s += fmt.Sprintf("; partition %d", a.Partition)
	}
	if a.Root != "" {
		s += " root=" + a.Root
	}
	s += ": " + a.Result
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	for _, n := range a.Notes {
		s += " [note: " + n + "]"
	}
	return s
}

func modelLine(st pisim.State) string {
	if st.EEPROM.IsZero() {
		return st.Model + " (no EEPROM)"
	}
	return fmt.Sprintf("%s (EEPROM %s, capabilities %#x)", st.Model, st.EEPROM.Format(time.DateOnly), st.Capabilities)
}
