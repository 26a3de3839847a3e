// Command benchdelta makes and applies rootfs delta payloads the way the
// release builder and the updater do, for scripts/bench-delta.sh:
//
//	benchdelta encode OLD.img NEW.img OUT.delta.xz
//	benchdelta apply OLD.img IN.delta.xz OUT.img
//
// apply writes OUT.img (created or truncated to the target size) and checks
// its hash against the one the delta names, as the updater does with the
// signed image hash.
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
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
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(out, 0, h.DstSize)); err != nil {
		return err
	}
	if [32]byte(sum.Sum(nil)) != h.DstSHA256 {
		return fmt.Errorf("%s does not hash to the target image's sha256", outPath)
	}
	return out.Close()
}
