package bootctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/rpi"
)

// Exit codes of the bootctl command.
const (
	ExitOK          = 0 // done, or nothing to do
	ExitFailure     = 1 // I/O error, unreadable card or bootloader facts
	ExitUsage       = 2 // bad flags or arguments
	ExitRefused     = 3 // the state forbids it: not on trial, on trial, empty slot
	ExitUnsupported = 4 // the bootloader cannot do tryboot A/B (preflight)
	ExitLayout      = 5 // the card is not in the A/B layout; nothing was written
)

// ExitCode maps an error of this package to the command's exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrNotOnTrial), errors.Is(err, ErrOnTrial), errors.Is(err, ErrSlotEmpty):
		return ExitRefused
	case errors.Is(err, rpi.ErrTrybootUnsupported):
		return ExitUnsupported
	case errors.Is(err, ErrLayout):
		return ExitLayout
	}
	return ExitFailure
}

type usageError struct{ error }

// Main runs the bootctl command line with args (without the program name)
// and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c Controller
	var asJSON bool
	root := &cobra.Command{
		Use:   "bootctl",
		Short: "Inspect and switch the A/B slots of a Raspberry Pi gateway",
		Long: `bootctl drives the Raspberry Pi firmware's tryboot A/B mechanism.

The card holds two slots: A (boot partition 2, root partition 5) and B (3, 6).
Partition 1 holds autoboot.txt, whose [all] section names the committed boot
partition and whose [tryboot] section names the one to try once.

  status    booted slot, committed slot, trial or not, version in each slot
  try       arm a one-shot trial of the other slot for the next reboot
  commit    make the booted trial slot the committed one
  rollback  make the other slot the committed one again

Every device path (/dev/mmcblk0, /proc/device-tree, /run) is resolved under
--root, so the same binary drives a Pi (--root /) and a virtual Pi (its
device directory).

Exit codes:
  0  done, or nothing to do
  1  failure: I/O error, unreadable card or bootloader facts
  2  usage error
  3  refused by the state: commit when not on trial, try or rollback during
     a trial, switching to an empty slot
  4  the bootloader cannot do tryboot A/B (e.g. a Pi 4 EEPROM older than
     2022-11-25): update the bootloader first
  5  the card is not in the A/B layout; nothing was written`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&c.Root, "root", "/", "device root: every device path is resolved under it")
	root.PersistentFlags().StringVar(&c.Card, "card", "", "card or card image to use (default: the boot device the bootloader reports, e.g. /dev/mmcblk0)")
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	print := func(cmd *cobra.Command, v any, human string) error {
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		_, err := fmt.Fprintln(cmd.OutOrStdout(), human)
		return err
	}
	noArgs := func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("%s takes no arguments", cmd.Name())}
		}
		return nil
	}
	root.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the booted and committed slot, trial state and slot versions",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := c.Status()
			if err != nil {
				return err
			}
			return print(cmd, st, humanStatus(st))
		},
	})
	for _, sub := range []struct {
		use, short string
		run        func() (Result, error)
	}{
		{"try", "Arm a one-shot trial boot of the other slot", c.Try},
		{"commit", "Make the booted trial slot the committed one (only during a trial)", c.Commit},
		{"rollback", "Make the other slot the committed one again", c.Rollback},
	} {
		root.AddCommand(&cobra.Command{
			Use:   sub.use,
			Short: sub.short,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				r, err := sub.run()
				if err != nil {
					return err
				}
				return print(cmd, r, r.Message)
			},
		})
	}
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "bootctl:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	return ExitCode(err)
}

func humanStatus(st *Status) string {
	var b strings.Builder
	trial := "no"
	if st.Trial {
		trial = "yes"
	}
	armed := "no"
	if st.Armed {
		armed = "yes"
	}
	fmt.Fprintf(&b, "booted:    slot %s (partition %d)\n", st.Booted, st.BootedPartition)
	fmt.Fprintf(&b, "committed: slot %s (partition %d)\n", st.Committed, st.CommittedPartition)
	fmt.Fprintf(&b, "trial:     %s\n", trial)
	fmt.Fprintf(&b, "armed:     %s (next reboot is a trial)\n", armed)
	for _, s := range st.Slots {
		v := "empty"
		if !s.Empty {
			v = s.Version
		}
		if s.Error != "" {
			v += " (" + s.Error + ")"
		}
		fmt.Fprintf(&b, "slot %s:    %s\n", s.Slot, v)
	}
	for _, w := range st.Warnings {
		fmt.Fprintf(&b, "warning:   %s\n", w)
	}
	return strings.TrimRight(b.String(), "\n")
}
