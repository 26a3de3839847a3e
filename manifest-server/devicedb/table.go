package devicedb

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes devices as the aligned table `manifest-server devices`
// prints: DEVICE RELEASE SLOT PHASE LAST ERROR LAST SEEN, with the last
// contact relative to now ("12s ago").
func WriteTable(w io.Writer, devices []Device, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tRELEASE\tSLOT\tPHASE\tLAST ERROR\tLAST SEEN")
	for _, d := range devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, dash(d.Release), dash(d.Slot), dash(d.Phase),
			dash(oneLine(d.LastError, 60)), Ago(now.Sub(d.LastSeen)))
	}
	return tw.Flush()
}

// Ago renders a duration in the past for a human: "12s ago", "5m ago",
// "3h ago", "2d ago".
func Ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a cell on one line (tabs and newlines would break the
// table) and cuts it to max runes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}
