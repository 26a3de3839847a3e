// Command imagebuilder builds, on the build host, the images of the
// gateway's A/B update system: the flashable SD card of a first install and
// the parts of a release. The work is done by package imagebuilder.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:   "imagebuilder",
	Short: "Build SD-card images and release payloads for Raspberry Pi gateways",
	Long: `imagebuilder builds, on the build host, what the gateway's A/B update system
installs: the flashable SD card of a first install (imagebuilder disk) and the
parts of a release.

File systems are made with the real tools (mkfs.ext4 from e2fsprogs, mkfs.vfat
from dosfstools, mcopy and mmd from mtools), and the same inputs with the same
SOURCE_DATE_EPOCH give byte-identical output.

Exit status: 0 on success, 1 on failure, 2 on a usage error.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	rootCmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
}

// usageError marks an error in how the command was called (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// usageErrorf reports a bad invocation.
func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps the result of a command to the exit status.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return 2
	}
	return 1
}

// sourceDateEpoch returns the time SOURCE_DATE_EPOCH sets, or the zero time
// when it is unset or empty; a bad value is a usage error.
func sourceDateEpoch() (time.Time, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return time.Time{}, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, usageErrorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
	}
	return time.Unix(sec, 0), nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagebuilder: %v\n", err)
		if exitCode(err) == 2 {
			fmt.Fprintln(os.Stderr, "Run 'imagebuilder --help' for usage.")
		}
	}
	os.Exit(exitCode(err))
}
