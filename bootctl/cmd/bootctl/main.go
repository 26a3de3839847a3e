// Command bootctl inspects and switches the A/B slots of a Raspberry Pi
// gateway. See `bootctl --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/healthguard/gateway-ota/bootctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bootctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
