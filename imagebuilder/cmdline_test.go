package imagebuilder_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder"
)

const testRoot = "PARTUUID=1234abcd-05"

func TestSetCmdlineRoot(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{in: "console=tty1 root=/dev/mmcblk0p2 rootwait\n", want: "console=tty1 root=PARTUUID=1234abcd-05 rootwait\n"},
		{in: "root=PARTUUID=deadbeef-02 quiet", want: "root=PARTUUID=1234abcd-05 quiet"},
		{in: "console=tty1  rootwait\n", want: "console=tty1  rootwait root=PARTUUID=1234abcd-05\n"},
		{in: "console=tty1 rootwait ", want: "console=tty1 rootwait root=PARTUUID=1234abcd-05"},
		{in: "", want: "root=PARTUUID=1234abcd-05"},
		{in: "\n", want: "root=PARTUUID=1234abcd-05\n"},
		{in: "quiet root=/dev/sda2 splash root=/dev/sdb1\r\n", want: "quiet root=PARTUUID=1234abcd-05 splash\r\n"},
		{in: "quiet -- init-arg root=keep", want: "quiet root=PARTUUID=1234abcd-05 -- init-arg root=keep"},
		{in: `dyndbg="file a.c +p" root=/dev/x rootfstype=ext4`, want: `dyndbg="file a.c +p" root=PARTUUID=1234abcd-05 rootfstype=ext4`},
		{in: `x="root=/dev/a b"`, want: `x="root=/dev/a b" root=PARTUUID=1234abcd-05`},
		{in: "rootwait rootfstype=ext4\n", want: "rootwait rootfstype=ext4 root=PARTUUID=1234abcd-05\n"},
		{in: "a\nb\n", err: "more than one line"},
		{in: "a\rb", err: "more than one line"},
		{in: "a\x00b", err: "NUL"},
		{in: `a="b`, err: "unbalanced double quote"},
		{in: strings.Repeat("a", imagebuilder.MaxCmdline+1), err: "more than"},
	}
	for _, c := range cases {
		got, err := imagebuilder.SetCmdlineRoot([]byte(c.in), testRoot)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("SetCmdlineRoot(%q): got %q, %v; want error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("SetCmdlineRoot(%q):\ngot  %q, %v\nwant %q", c.in, got, err, c.want)
		}
	}
	if _, err := imagebuilder.SetCmdlineRoot([]byte("quiet"), "bad value"); err == nil {
		t.Errorf("a root value with a blank was accepted")
	}
}

// FuzzSetCmdlineRoot checks that whatever the file holds, the result is one
// line with exactly one root= before "--", keeps the line ending, and that
// setting the root again changes nothing.
func FuzzSetCmdlineRoot(f *testing.F) {
	for _, s := range []string{"", "\n", "console=tty1 root=/dev/mmcblk0p2 rootwait\n", "a -- root=x", `a="b c" root=d`, "root=a root=b\r\n", "\t--\t"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := imagebuilder.SetCmdlineRoot(in, testRoot)
		if err != nil {
			return
		}
		again, err := imagebuilder.SetCmdlineRoot(out, testRoot)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %.300q -> %.300q -> %.300q, %v", in, out, again, err)
		}
		if bytes.HasSuffix(in, []byte("\n")) != bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("line ending changed: %q -> %q", in, out)
		}
		line := bytes.TrimRight(out, "\r\n")
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("more than one line: %q", out)
		}
		n := 0
		for _, w := range strings.Fields(string(line)) {
			if w == "--" {
				break
			}
			if strings.HasPrefix(w, "root=") {
				n++
				if w != "root="+testRoot {
					t.Fatalf("root argument %q in %q", w, out)
				}
			}
		}
		if n != 1 && !bytes.Contains(line, []byte(`"`)) {
			t.Fatalf("%d root= arguments in %q", n, out)
		}
	})
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  bool
	}{
		{"16M", 16 << 20, false}, {"16m", 16 << 20, false}, {"1G", 1 << 30, false}, {"512K", 512 << 10, false},
		{"1048576", 1 << 20, false}, {"2GiB", 2 << 30, false}, {"64MB", 64 << 20, false}, {"1T", 1 << 40, false},
		{"", 0, true}, {"M", 0, true}, {"-1M", 0, true}, {"1.5G", 0, true}, {"12X", 0, true}, {"99999999999G", 0, true},
	}
	for _, c := range cases {
		got, err := imagebuilder.ParseSize(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseSize(%q): got %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"16M", "1G", "0", "512KiB", "-1", "9223372036854775807", "1TB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := imagebuilder.ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512 bytes", 16 << 20: "16 MiB", 3 << 29: "1.5 GiB", 1 << 30: "1 GiB"} {
		if got := imagebuilder.FormatSize(n); got != want {
			t.Errorf("FormatSize(%d): got %q, want %q", n, got, want)
		}
	}
}
