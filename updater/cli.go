package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/updater/containers"
	"github.com/healthguard/gateway-ota/updater/payload"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// Exit codes of ota-updater.
const (
	ExitOK         = 0 // done; for check: an update is available
	ExitFailure    = 1 // error (network, I/O, bad card); retry later
	ExitUsage      = 2 // bad flags, arguments or configuration
	ExitNoUpdate   = 3 // check/update: nothing newer to install
	ExitRefused    = 4 // untrusted, expired, incompatible or older release; no trusted root; bootloader cannot tryboot
	ExitBusy       = 5 // another ota-updater is running
	ExitRolledBack = 6 // confirm: the trial failed; rebooting into the committed slot
)

// ExitCode maps an error to the exit code; the one place that does.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrNoUpdate):
		return ExitNoUpdate
	case errors.Is(err, ErrBusy):
		return ExitBusy
	case errors.Is(err, ErrIncompatible), errors.Is(err, ErrRollback), errors.Is(err, ErrTrialPending),
		errors.Is(err, trust.ErrNoTrustedRoot), errors.Is(err, trust.ErrVerify), errors.Is(err, trust.ErrExpired),
		errors.Is(err, trust.ErrTooLarge), errors.Is(err, rpi.ErrTrybootUnsupported),
		errors.Is(err, bootctl.ErrLayout), errors.Is(err, bootctl.ErrSlotEmpty), errors.Is(err, payload.ErrDigestMismatch):
		return ExitRefused
	case errors.Is(err, ErrNoServer):
		return ExitUsage
	case errors.Is(err, ErrContainersRolledBack), errors.Is(err, containers.ErrUnhealthy):
		return ExitRolledBack
	case errors.Is(err, containers.ErrDigestMismatch), errors.Is(err, containers.ErrBackupTooLarge):
		return ExitRefused
	}
	return ExitFailure
}

type usageError struct{ error }

const longHelp = `ota-updater installs signed releases on a Raspberry Pi gateway with A/B
slots and the firmware's tryboot flag.

  check     is a release newer than the running one available?
  update    download, verify and write it to the other slot, arm a trial
            boot, stop services and reboot
  confirm   at boot: judge a trial with the release's health checks, then
            commit it or reboot back to the committed slot
  status    the boot slots and the update journal
  run       the daemon: check periodically, update, report

Configuration, later sources winning: /etc/ota/updater.yaml, then
/data/ota/updater.yaml (both under --root), then OTA_* environment variables
(OTA_SERVER, OTA_CHANNEL, ...), then flags. Keys: server, reports, channel,
compatible, device, data_dir, poll_interval, max_backoff, stall_timeout,
http_timeout, stop_units, stop_timeout, reboot.

With --root DIR every device path (/dev/mmcblk0, /proc, /run, /data) is
resolved under DIR, so the same binary updates a virtual Pi; there the
reboot is handed to the virtual Pi.

Exit codes:
  0  done (check: an update is available)
  1  failure (network, I/O); retry later
  2  usage or configuration error
  3  no update available
  4  refused: untrusted, expired, incompatible or older release, no
     trusted root, bootloader without tryboot, unexpected card layout
  5  another ota-updater is running
  6  update of a container set: the new set was unhealthy and the previous
     one was restored; confirm: the trial failed its health checks; the device is rebooting
     to the committed slot (a rollback found on the committed slot after a
     trial that died early is reported with exit 0)`

// configKeys lists the configuration keys of struct type t (their
// mapstructure tags), nested structs' keys joined with "."; maps are left
// out (they come from files only).
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if tag == "" || tag == "-" || f.Type.Kind() == reflect.Map {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, configKeys(f.Type, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

// Main runs ota-updater with args (without the program name).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var asJSON, verbose bool
	var cfgFile string
	v := viper.New()
	root := &cobra.Command{
		Use:           "ota-updater",
		Short:         "Over-the-air updates for Raspberry Pi gateways (A/B slots with tryboot)",
		Long:          longHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.String("root", "/", "device root: every device path is resolved under it")
	pf.String("server", "", "base URL of the update repository")
	pf.String("reports", "", "base URL of the manifest server that takes device reports")
	pf.String("channel", "stable", "release channel")
	pf.String("compatible", "", "board id releases must name (default: the running release's)")
	pf.String("device", "", "device id for reports (default: board serial or card id)")
	pf.String("reboot", "auto", "how to reboot: auto, systemd, virtual or none")
	pf.StringVar(&cfgFile, "config", "", "configuration file (default /etc/ota/updater.yaml and /data/ota/updater.yaml under --root)")
	pf.BoolVar(&asJSON, "json", false, "print JSON")
	pf.BoolVarP(&verbose, "verbose", "v", false, "log more")

	build := func(cmd *cobra.Command) (*Updater, error) {
		if err := v.BindPFlags(pf); err != nil {
			return nil, err
		}
		v.SetEnvPrefix("OTA")
		v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
		// Viper decodes from the environment only the keys it knows of
		// (from a flag or a file): each key of Config is bound, so that
		// OTA_HTTP_TIMEOUT or OTA_CONTAINERS_PROJECT count without a file.
		for _, k := range configKeys(reflect.TypeFor[Config](), "") {
			if err := v.BindEnv(k); err != nil {
				return nil, err
			}
		}
		rootDir := v.GetString("root")
		files := []string{filepath.Join(rootDir, "etc/ota/updater.yaml"), filepath.Join(rootDir, "data/ota/updater.yaml")}
		if cfgFile != "" {
			files = []string{cfgFile}
		}
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				if cfgFile != "" {
					return nil, usageError{fmt.Errorf("config: %w", err)}
				}
				continue
			}
			v.SetConfigFile(f)
			if err := v.MergeInConfig(); err != nil {
				return nil, usageError{fmt.Errorf("config %s: %w", f, err)}
			}
		}
		var cfg Config
		if err := v.Unmarshal(&cfg); err != nil {
			return nil, usageError{fmt.Errorf("config: %w", err)}
		}
		cfg.Root = rootDir
		if cfg.Containers.DockerHost == "" {
			cfg.Containers.DockerHost = os.Getenv("DOCKER_HOST") // containers hook
		}
		cfg.Progress = stderr
		logger := log.New(stderr, "ota-updater: ", 0)
		if verbose || cmd.Name() == "run" || cmd.Name() == "confirm" {
			cfg.Logf = logger.Printf
		}
		u, err := New(cfg)
		if err != nil {
			return nil, usageError{err}
		}
		return u, nil
	}
	out := func(cmd *cobra.Command, val any, human string) {
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			enc.Encode(val)
			return
		}
		fmt.Fprintln(cmd.OutOrStdout(), human)
	}
	noArgs := func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("%s takes no arguments", cmd.Name())}
		}
		return nil
	}

	root.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Say whether a newer release is available (exit 0 yes, 3 no)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := build(cmd)
			if err != nil {
				return err
			}
			res, err := u.Check(cmd.Context())
			if res != nil && (err == nil || errors.Is(err, ErrNoUpdate)) {
				h := fmt.Sprintf("running %s (counter %d); no newer release for %s on channel %s", res.Current, res.CurrentCounter, res.Compatible, res.Channel)
				if res.Available {
					h = fmt.Sprintf("update available: %s (counter %d), running %s (counter %d)", res.Version, res.Counter, res.Current, res.CurrentCounter)
					if res.PreviouslyFailed != "" {
						h += "\nnote: it failed here before: " + res.PreviouslyFailed
					}
				}
				out(cmd, res, h)
			}
			return err
		},
	})
	var uo UpdateOptions
	upd := &cobra.Command{
		Use:   "update",
		Short: "Install the newest release into the other slot and reboot into a trial",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := build(cmd)
			if err != nil {
				return err
			}
			res, err := u.Update(cmd.Context(), uo)
			if res != nil {
				h := fmt.Sprintf("release %s written to slot %s and armed for a trial boot\n%s", res.Version, res.Slot, res.Reboot)
				if !res.Armed { // containers hook: a container-only release arms nothing
					h = fmt.Sprintf("release %s: %s", res.Version, res.Reboot)
					if err != nil {
						h = fmt.Sprintf("release %s: the container set was switched back", res.Version)
					}
				}
				out(cmd, res, h)
			}
			if errors.Is(err, ErrNoUpdate) {
				fmt.Fprintln(cmd.ErrOrStderr(), "ota-updater: already up to date")
				return exitOnly{ExitNoUpdate}
			}
			return err
		},
	}
	upd.Flags().StringVar(&uo.Version, "version", "", "install this release instead of the newest")
	upd.Flags().BoolVar(&uo.NoReboot, "no-reboot", false, "arm the trial but do not reboot")
	root.AddCommand(upd)
	root.AddCommand(&cobra.Command{
		Use:   "confirm",
		Short: "At boot: commit a healthy trial or return to the committed slot",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := build(cmd)
			if err != nil {
				if !onTrial(v.GetString("root")) {
					// A configuration error on a committed boot is logged,
					// not failed, for the same reason as below.
					fmt.Fprintln(cmd.ErrOrStderr(), "ota-updater: confirm:", err)
					return nil
				}
				return err
			}
			res, err := u.Confirm(cmd.Context())
			if err != nil && !onTrial(u.cfg.Root) {
				// On a committed boot a failing confirmer must not fail the
				// unit: its FailureAction reboots, every boot.
				fmt.Fprintln(cmd.ErrOrStderr(), "ota-updater: confirm:", err)
				return nil
			}
			if res != nil {
				h := "nothing to confirm"
				switch res.Outcome {
				case PhaseCommitted:
					h = "release " + res.Version + " committed"
				case PhaseRolledBack, PhaseRollingBack:
					h = "release " + res.Version + " rolled back: " + res.Reason
				}
				if res.Reason != "" && res.Outcome == "nothing" {
					h = res.Reason
				}
				if res.Reboot != "" {
					h += "\n" + res.Reboot
				}
				out(cmd, res, h)
				// Only a trial that must be left fails the unit (its
				// FailureAction reboots); a rollback recorded on the
				// committed slot is reported and the boot goes on.
				if err == nil && res.Outcome == PhaseRollingBack {
					return exitOnly{ExitRolledBack}
				}
			}
			return err
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the slots and the update journal",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := build(cmd)
			if err != nil {
				return err
			}
			si, err := u.Status(cmd.Context())
			if err != nil {
				return err
			}
			out(cmd, si, humanStatus(si))
			return nil
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "run",
		Short: "Run the daemon: check periodically, install, report",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := build(cmd)
			if err != nil {
				return err
			}
			return u.Run(cmd.Context())
		},
	})
	err := root.Execute()
	var eo exitOnly
	if errors.As(err, &eo) {
		return eo.code
	}
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "ota-updater:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	return ExitCode(err)
}

// exitOnly ends the command with a code and no further message.
type exitOnly struct{ code int }

func (e exitOnly) Error() string { return fmt.Sprintf("exit %d", e.code) }

func humanStatus(si *StatusInfo) string {
	var b strings.Builder
	st, s := si.Boot, si.State
	fmt.Fprintf(&b, "device:    %s\n", si.Device)
	fmt.Fprintf(&b, "running:   %s in slot %s", st.Slot(st.Booted).Version, st.Booted)
	if st.Trial {
		b.WriteString(" (trial)")
	}
	fmt.Fprintf(&b, "\ncommitted: slot %s\n", st.Committed)
	for _, ss := range st.Slots {
		v := ss.Version
		if ss.Empty {
			v = "empty"
		}
		fmt.Fprintf(&b, "slot %s:    %s\n", ss.Slot, v)
	}
	fmt.Fprintf(&b, "phase:     %s", s.Phase)
	if s.Version != "" {
		fmt.Fprintf(&b, " (%s", s.Version)
		switch {
		case s.Manifest != nil && s.Manifest.ContainerOnly():
			b.WriteString(", containers only")
		case s.Target != "":
			fmt.Fprintf(&b, " in slot %s", s.Target)
		}
		b.WriteString(")")
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\nerror:     %s", s.Error)
	}
	fmt.Fprintf(&b, "\nfloor:     %d", s.Floor)
	if !s.LastCheck.IsZero() {
		fmt.Fprintf(&b, "\nchecked:   %s ago", time.Since(s.LastCheck).Round(time.Second))
	}
	humanContainers(&b, si.Containers) // containers hook
	return b.String()
}
