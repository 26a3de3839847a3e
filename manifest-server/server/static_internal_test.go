package server

import (
	"io/fs"
	"strings"
	"testing"
)

func TestRepoName(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"/metadata/timestamp.json", "metadata/timestamp.json", true},
		{"/targets/slot/ab.rootfs.xz", "targets/slot/ab.rootfs.xz", true},
		{"/", "", false},
		{"", "", false},
		{"/metadata/", "", false},
		{"/../secret", "", false},
		{"/metadata/../secret", "", false},
		{"//secret", "", false},
		{"/metadata/./timestamp.json", "", false},
		{"/metadata/.lock", "", false},
		{"/.git/config", "", false},
		{`/metadata\..\secret`, "", false},
	}
	for _, tt := range tests {
		got, ok := repoName(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("repoName(%q): got %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzRepoName: whatever URL path comes in, an accepted name is a valid,
// local, non-hidden slash path.
func FuzzRepoName(f *testing.F) {
	for _, s := range []string{"/metadata/1.root.json", "/../x", "/a//b", "/a/./b", "/.x", "/a\\b", "/a/b/", "/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, ok := repoName(in)
		if !ok {
			return
		}
		if !fs.ValidPath(name) || name == "." || strings.Contains(name, `\`) {
			t.Fatalf("repoName(%q) accepted %q", in, name)
		}
		for _, el := range strings.Split(name, "/") {
			if el == "" || el == ".." || strings.HasPrefix(el, ".") {
				t.Fatalf("repoName(%q) accepted %q with element %q", in, name, el)
			}
		}
	})
}
