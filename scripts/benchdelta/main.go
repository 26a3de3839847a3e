// Command benchdelta makes and applies rootfs delta payloads the way the
// release builder and the updater do, for scripts/bench-delta.sh:
//
//	benchdelta encode OLD.img NEW.img OUT.delta.xz
//	benchdelta apply OLD.img IN.delta.xz OUT.img
//
// apply writes OUT.img (created or truncated to the target size). Like
// xdelta3 -d it does not hash the result: the updater reads every slot back
// against the signed hash whatever the payload (payload.VerifyRegion), and
// the benchmark compares the result with the new image.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/healthguard/gateway-ota/imagebuilder/delta"
	format "github.com/healthguard/gateway-ota/updater/delta"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchdelta:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: benchdelta encode OLD NEW OUT | benchdelta apply OLD DELTA OUT")
	}
	switch args[0] {
	case "encode":
		st, err := delta.EncodeFile(ctx, args[1], args[2], args[3], delta.Options{Logf: func(f string, a ...any) {
			fmt.Fprintf(os.Stderr, f+"\n", a...)
		}})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%+v\n", st)
		return nil
	case "apply":
		return apply(ctx, args[1], args[2], args[3])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func apply(ctx context.Context, oldPath, deltaPath, outPath string) error {
	src, err := os.Open(oldPath)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	pf, err := os.Open(deltaPath)
	if err != nil {
		return err
	}
	defer pf.Close()
	doc, err := format.OpenPayload(pf, format.CodecXZ)
	if err != nil {
		return err
	}
	defer doc.Close()
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	h, err := format.Apply(ctx, doc, src, st.Size(), out, 1<<40, format.Options{})
	if err != nil {
		return err
	}
	if err := out.Truncate(h.DstSize); err != nil {
		return err
	}
	return out.Close()
}
