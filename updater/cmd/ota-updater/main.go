// Command ota-updater is the on-device update service of a Raspberry Pi
// gateway. See `ota-updater --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/healthguard/gateway-ota/updater"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := updater.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
