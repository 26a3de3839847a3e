// Command benchapply applies one full payload to a slot file the way ota-updater
// does (payload.WriteImage, then payload.VerifyRegion) and prints the wall time. It
// is the Go side of scripts/bench-apply.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/updater/payload"
)

func main() {
	var (
		codec, slot, imageSHA, payloadSHA string
		imageSize, offset, partSize       int64
	)
	cmd := &cobra.Command{
		Use:   "benchapply PAYLOAD",
		Short: "Apply a full payload to a slot file and read it back",
		Long: `benchapply streams PAYLOAD (xz or uncompressed) into --slot at --offset with
payload.WriteImage (decompress, hash, write, sync), then re-reads the written
region with payload.VerifyRegion and compares its SHA-256. It prints one line:
"seconds=<wall time> bytes=<image size>". With --payload-sha256 the compressed
file is also hashed while it is read, as ota-updater does.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			start := time.Now()
			in, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			var src interface{ Read([]byte) (int, error) } = in
			if payloadSHA != "" {
				st, err := in.Stat()
				if err != nil {
					return err
				}
				if src, err = payload.CheckedReader(in, st.Size(), payloadSHA); err != nil {
					return err
				}
			}
			out, err := os.OpenFile(slot, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			defer out.Close()
			if partSize == 0 {
				partSize = imageSize
			}
			want := payload.Image{Size: imageSize, SHA256: imageSHA}
			if err := payload.WriteImage(ctx, src, codec, out, offset, partSize, want, nil); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if err := payload.VerifyRegion(ctx, out, offset, imageSize, imageSHA, nil); err != nil {
				return fmt.Errorf("read back: %w", err)
			}
			fmt.Printf("seconds=%.3f bytes=%d\n", time.Since(start).Seconds(), imageSize)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&codec, "codec", payload.CodecXZ, "payload codec: xz or none")
	f.StringVar(&slot, "slot", "", "slot file or block device to write (required)")
	f.Int64Var(&offset, "offset", 0, "byte offset of the slot in --slot")
	f.Int64Var(&partSize, "partition-size", 0, "size of the slot partition (default: --image-size)")
	f.Int64Var(&imageSize, "image-size", 0, "signed size of the uncompressed image (required)")
	f.StringVar(&imageSHA, "image-sha256", "", "signed SHA-256 of the uncompressed image (required)")
	f.StringVar(&payloadSHA, "payload-sha256", "", "SHA-256 of the payload file, checked while reading it")
	for _, name := range []string{"slot", "image-size", "image-sha256"} {
		cmd.MarkFlagRequired(name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		os.Exit(1)
	}
}
