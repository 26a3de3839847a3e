package imagebuilder

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a byte count with an optional binary suffix: K, M, G or T
// (also written KiB, MiB, ... or KB, MB, ...; all mean powers of 1024).
// A plain number is bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	upper := strings.ToUpper(t)
	for _, suf := range []string{"IB", "B"} {
		if strings.HasSuffix(upper, suf) && len(upper) > len(suf) {
			c := upper[len(upper)-len(suf)-1]
			if c == 'K' || c == 'M' || c == 'G' || c == 'T' {
				upper = upper[:len(upper)-len(suf)]
				break
			}
		}
	}
	if n := len(upper); n > 0 {
		switch upper[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			upper = upper[:n-1]
		}
	}
	if upper == "" || strings.ContainsAny(upper, "+-") {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", s)
	}
	v, err := strconv.ParseInt(upper, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", s)
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v * mult, nil
}

// FormatSize renders a byte count for messages: "64 MiB", "1.5 GiB", "512 bytes".
func FormatSize(n int64) string {
	units := []struct {
		v    int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if n >= u.v {
			if n%u.v == 0 {
				return fmt.Sprintf("%d %s", n/u.v, u.name)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.v), u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
