package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
)

func init() {
	var (
		dbPath string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "devices --db FILE [--json]",
		Short: "List the devices and their last reported state",
		Long: `devices lists every device that has reported to the server, from the
database "serve" writes (it can run while the server does):

  DEVICE     the device id
  RELEASE    the release it last reported
  SLOT       the slot it booted (A or B)
  PHASE      its last phase: idle, checking, downloading, writing, armed,
             trying, committed, rolled-back, failed
  LAST ERROR the newest error it reported (cleared by a committed report)
  LAST SEEN  the time of its last accepted report

--json prints the same as a JSON array, with times in RFC 3339 and the
devices' public keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDevices(cmd.Context(), cmd.OutOrStdout(), dbPath, asJSON)
		},
	}
	cmd.Flags().StringVar(&dbPath, "db", "", "SQLite database file written by serve (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.MarkFlagRequired("db")
	rootCmd.AddCommand(cmd)
}

func runDevices(ctx context.Context, w io.Writer, dbPath string, asJSON bool) error {
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("device database: %w", err)
	}
	db, err := devicedb.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	ds, err := db.Devices(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if ds == nil {
			ds = []devicedb.Device{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ds)
	}
	return devicedb.WriteTable(w, ds, time.Now())
}
