package rpi

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestParseAutoboot(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		committed int
		trial     int
		bootTrial int // BootPartition(true)
		ab        bool
	}{
		{"canonical", "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n", 2, 3, 3, true},
		{"crlf and spaces", "[all]\r\n tryboot_a_b = 1 \r\n\tboot_partition=3\r\n[tryboot]\r\nboot_partition = 2\r\n", 3, 2, 2, true},
		{"no final newline", "[all]\nboot_partition=2\n[tryboot]\nboot_partition=3", 2, 3, 3, false},
		{"before first filter is [all]", "tryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n", 2, 3, 3, true},
		{"later overrides earlier", "[all]\nboot_partition=2\nboot_partition=3\n[tryboot]\nboot_partition=2\nboot_partition=5\n", 3, 5, 5, false},
		{"[none] never applies", "[all]\nboot_partition=2\n[none]\nboot_partition=3\ntryboot_a_b=1\n", 2, 0, 2, false},
		{"unknown filter never applies", "[all]\nboot_partition=2\n[pi4]\nboot_partition=3\n[tryboot]\n[cm4]\nboot_partition=7\n", 2, 0, 2, false},
		{"[all] after [tryboot] overrides the trial", "[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n", 2, 0, 2, false},
		{"tryboot_a_b only in [tryboot]", "[all]\nboot_partition=2\n[tryboot]\ntryboot_a_b=1\nboot_partition=3\n", 2, 3, 3, true},
		{"tryboot_a_b=0", "[all]\ntryboot_a_b=0\nboot_partition=2\n", 2, 0, 2, false},
		{"empty", "", 0, 0, 0, false},
		{"comments only", "# nothing\n\n", 0, 0, 0, false},
		{"unknown lines kept", "[all]\nboot_partition=2\nnonsense\n=odd\n", 2, 0, 2, false},
		{"padding dropped", "[all]\nboot_partition=2\n" + strings.Repeat("#", 40) + "\n", 2, 0, 2, false},
		{"boot_partition 0 and 63", "[all]\nboot_partition=0\n[tryboot]\nboot_partition=63\n", 0, 63, 63, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAutoboot([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseAutoboot: %v", err)
			}
			if got := a.Committed(); got != tt.committed {
				t.Errorf("Committed() = %d, want %d", got, tt.committed)
			}
			if got := a.BootPartition(false); got != tt.committed {
				t.Errorf("BootPartition(false) = %d, want %d", got, tt.committed)
			}
			if got := a.Trial(); got != tt.trial {
				t.Errorf("Trial() = %d, want %d", got, tt.trial)
			}
			if got := a.BootPartition(true); got != tt.bootTrial {
				t.Errorf("BootPartition(true) = %d, want %d", got, tt.bootTrial)
			}
			if got := a.TrybootAB(); got != tt.ab {
				t.Errorf("TrybootAB() = %v, want %v", got, tt.ab)
			}
			again, err := ParseAutoboot(a.Render())
			if err != nil {
				t.Fatalf("parse of Render(): %v\n%s", err, a.Render())
			}
			if got, want := string(again.Render()), string(a.Render()); got != want {
				t.Errorf("Render is not stable:\ngot  %q\nwant %q", got, want)
			}
		})
	}
}

func TestParseAutobootErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"too large", strings.Repeat("#", AutobootMaxSize+1), "more than the 512"},
		{"NUL", "[all]\nboot_partition=2\x00\n", "NUL byte at offset 22"},
		{"not UTF-8", "[all]\n# \xff\xfe\n", "UTF-8"},
		{"boot_partition 64", "[all]\nboot_partition=64\n", "0 to 63"},
		{"boot_partition negative", "[all]\nboot_partition=-1\n", "0 to 63"},
		{"boot_partition plus sign", "[all]\nboot_partition=+2\n", "0 to 63"},
		{"boot_partition hex", "[all]\nboot_partition=0x2\n", "0 to 63"},
		{"boot_partition empty", "[all]\nboot_partition=\n", "0 to 63"},
		{"boot_partition inline comment", "[all]\nboot_partition=2 # A\n", "0 to 63"},
		{"boot_partition in [none] still checked", "[none]\nboot_partition=99\n", "line 2"},
		{"tryboot_a_b 2", "[all]\ntryboot_a_b=2\n", "must be 0 or 1"},
		{"tryboot_a_b yes", "tryboot_a_b=yes\n", "must be 0 or 1"},
		{"unclosed filter", "[all\nboot_partition=2\n", "not closed"},
		{"filter with comment", "[all] # x\n", "not closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAutoboot([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseAutoboot(%q) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestNewAutoboot(t *testing.T) {
	got := string(NewAutoboot(2, 3).Render())
	want := "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
	if got != want {
		t.Errorf("NewAutoboot(2, 3).Render() =\n%s\nwant\n%s", got, want)
	}
	a := NewAutoboot(3, 2)
	if a.Committed() != 3 || a.Trial() != 2 || !a.TrybootAB() {
		t.Errorf("NewAutoboot(3, 2): committed %d trial %d tryboot_a_b %v, want 3 2 true", a.Committed(), a.Trial(), a.TrybootAB())
	}
}

func TestEffective(t *testing.T) {
	a, err := ParseAutoboot([]byte("x=0\n[all]\ntryboot_a_b=1\nboot_partition=2\nfoo=bar\n[none]\nfoo=none\n[tryboot]\nboot_partition=3\nfoo=try\n[pi5]\nboot_partition=4\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		tryboot bool
		want    map[string]string
	}{
		{false, map[string]string{"x": "0", "tryboot_a_b": "1", "boot_partition": "2", "foo": "bar"}},
		{true, map[string]string{"x": "0", "tryboot_a_b": "1", "boot_partition": "3", "foo": "try"}},
	} {
		if got := a.Effective(tt.tryboot); !maps.Equal(got, tt.want) {
			t.Errorf("Effective(%v) = %v, want %v", tt.tryboot, got, tt.want)
		}
	}
}

func TestSetCommittedTrial(t *testing.T) {
	tests := []struct {
		name, in         string
		committed, trial int
		want             string
	}{
		{"swap canonical", "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n", 3, 2,
			"[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n"},
		{"empty file", "", 2, 3,
			"[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n"},
		{"leading section keeps its place", "# card\ntryboot_a_b=1\n", 2, 3,
			"# card\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"},
		{"comment-only leading section applies as [all]", "# card\n[tryboot]\nboot_partition=3\n", 2, 3,
			"# card\nboot_partition=2\n[tryboot]\nboot_partition=3\n"},
		{"[all] only after [tryboot]", "[tryboot]\n[all]\ntryboot_a_b=1\n", 2, 3,
			"[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n[all]\ntryboot_a_b=1\n"},
		{"setting goes before trailing comments", "[all]\ntryboot_a_b=1\n# end of all\n[tryboot]\n# nothing yet\n", 2, 3,
			"[all]\ntryboot_a_b=1\nboot_partition=2\n# end of all\n[tryboot]\n# nothing yet\nboot_partition=3\n"},
		{"trial overridden by later [all] gets its own section", "[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n", 2, 3,
			"[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n"},
		{"unknown filters untouched", "[pi4]\nboot_partition=9\n[all]\nboot_partition=2\n", 3, 2,
			"[pi4]\nboot_partition=9\n[all]\nboot_partition=3\n[tryboot]\nboot_partition=2\n"},
		{"the effective line changes, not the first", "[all]\nboot_partition=2\nboot_partition=3\n[tryboot]\nboot_partition=2\n", 2, 3,
			"[all]\nboot_partition=2\nboot_partition=2\n[tryboot]\nboot_partition=3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAutoboot([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			a.SetCommitted(tt.committed)
			a.SetTrial(tt.trial)
			if got := string(a.Render()); got != tt.want {
				t.Errorf("Render() =\n%s\nwant\n%s", got, tt.want)
			}
			if a.Committed() != tt.committed || a.Trial() != tt.trial {
				t.Errorf("after setting: committed %d trial %d, want %d %d", a.Committed(), a.Trial(), tt.committed, tt.trial)
			}
		})
	}
}

func TestRenderPadded(t *testing.T) {
	a := NewAutoboot(2, 3)
	content := a.Render()
	for _, size := range []int{len(content), len(content) + 1, len(content) + 2, len(content) + 3, AutobootMaxSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			b, err := a.RenderPadded(size)
			if err != nil {
				t.Fatalf("RenderPadded(%d): %v", size, err)
			}
			if len(b) != size {
				t.Fatalf("RenderPadded(%d) gave %d bytes", size, len(b))
			}
			if !bytes.HasPrefix(b, content) {
				t.Fatalf("RenderPadded(%d) does not start with the content:\n%q", size, b)
			}
			p, err := ParseAutoboot(b)
			if err != nil {
				t.Fatalf("parse padded: %v", err)
			}
			if got := p.Render(); !bytes.Equal(got, content) {
				t.Errorf("padding not dropped on parse: Render() = %q, want %q", got, content)
			}
			again, err := p.RenderPadded(size)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("pad, parse, pad changed bytes:\ngot  %q\nwant %q", again, b)
			}
		})
	}
	if _, err := a.RenderPadded(len(content) - 1); !errors.Is(err, ErrAutobootTooLarge) {
		t.Errorf("RenderPadded(too small) error = %v, want ErrAutobootTooLarge", err)
	}
	if _, err := a.RenderPadded(AutobootMaxSize + 1); err == nil {
		t.Error("RenderPadded(513) succeeded")
	}
	bad := NewAutoboot(2, 3)
	bad.SetCommitted(64)
	if _, err := bad.RenderPadded(AutobootMaxSize); err == nil {
		t.Error("RenderPadded with boot_partition=64 succeeded")
	}
}

// TestAutobootGolden renders each testdata/autoboot/*.txt in canonical form
// (NAME.golden), with the two partitions swapped as a commit does
// (NAME.swapped.golden) and padded to 512 bytes (NAME.padded.golden).
// Run with -update to rewrite them.
func TestAutobootGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "autoboot", "*.txt"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(in, ".txt")
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			a, err := ParseAutoboot(src)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden", a.Render())
			padded, err := a.RenderPadded(AutobootMaxSize)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".padded.golden", padded)
			c, tr := a.Committed(), a.Trial()
			a.SetCommitted(tr)
			a.SetTrial(c)
			golden(t, name+".swapped.golden", a.Render())
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot\n%s\nwant\n%s", name, got, want)
	}
}

// FuzzParseAutoboot: no input panics the parser; what parses renders into
// text that parses to the same effective settings on both kinds of boot; and
// padding to 512 bytes survives a parse unchanged.
func FuzzParseAutoboot(f *testing.F) {
	f.Add([]byte("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAutoboot(b)
		if err != nil {
			return
		}
		r := a.Render()
		again, err := parseAutoboot(r) // Render may add a final newline past 512 bytes
		if err != nil {
			t.Fatalf("Render() does not parse: %v\ninput %q\nrender %q", err, b, r)
		}
		for _, tryboot := range []bool{false, true} {
			if got, want := again.Effective(tryboot), a.Effective(tryboot); !maps.Equal(got, want) {
				t.Fatalf("Effective(%v) after Render: %v, want %v\ninput %q", tryboot, got, want, b)
			}
		}
		if a.Committed() != again.Committed() || a.Trial() != again.Trial() {
			t.Fatalf("partitions changed by Render: %d/%d -> %d/%d", a.Committed(), a.Trial(), again.Committed(), again.Trial())
		}
		padded, err := a.RenderPadded(AutobootMaxSize)
		if err != nil {
			if len(r) <= AutobootMaxSize {
				t.Fatalf("RenderPadded of %d-byte content: %v", len(r), err)
			}
			return
		}
		p, err := ParseAutoboot(padded)
		if err != nil {
			t.Fatalf("padded file does not parse: %v\n%q", err, padded)
		}
		twice, err := p.RenderPadded(AutobootMaxSize)
		if err != nil {
			t.Fatalf("RenderPadded after parse: %v", err)
		}
		if !bytes.Equal(twice, padded) {
			t.Fatalf("padded round trip changed bytes:\nfirst  %q\nsecond %q", padded, twice)
		}
		for _, tryboot := range []bool{false, true} {
			if got, want := p.Effective(tryboot), a.Effective(tryboot); !maps.Equal(got, want) {
				t.Fatalf("Effective(%v) after padding: %v, want %v", tryboot, got, want)
			}
		}
	})
}
