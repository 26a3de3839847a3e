package release

import (
	"errors"
	"strings"
	"testing"
)

// FuzzImageRef: ImageDigest, ValidImageRef and ImagesTag agree on every
// input. A reference ImageDigest accepts ends in "@" and its digest, which
// is sha256 in lowercase hex; one ValidImageRef accepts keeps its digest
// when reduced to "<name>@<digest>" (the form the device pulls), and that
// form is valid too. Seeds run with go test; more live in
// testdata/fuzz/FuzzImageRef.
func FuzzImageRef(f *testing.F) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		"registry.example.com/healthguard/mqtt-bridge@sha256:" + hex,
		"127.0.0.1:5000/svc:1.2.0@sha256:" + hex,
		"healthguard/mqtt-bridge:1.2.0",
		"svc@sha256:" + strings.ToUpper(hex),
		"svc@sha256:" + hex[:63],
		"@sha256:" + hex,
		"a@sha256:" + hex + "@sha256:" + hex,
		"../x@sha256:" + hex,
		"host:5000/repo:tag:more@sha256:" + hex,
		"svc\x00@sha256:" + hex,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, digest, ok := ImageDigest(ref)
		tag, tagOK := ImagesTag(ref)
		if tagOK != ok {
			t.Fatalf("ImagesTag(%q) ok = %v, ImageDigest ok = %v", ref, tagOK, ok)
		}
		verr := ValidImageRef(ref)
		if verr != nil && !errors.Is(verr, ErrInvalid) {
			t.Fatalf("ValidImageRef(%q): %v does not wrap ErrInvalid", ref, verr)
		}
		if !ok {
			if verr == nil {
				t.Fatalf("ValidImageRef accepts %q, which has no digest", ref)
			}
			return
		}
		hexPart, found := strings.CutPrefix(digest, "sha256:")
		if !found || ValidSHA256(hexPart) != nil {
			t.Fatalf("ImageDigest(%q): digest %q", ref, digest)
		}
		if !strings.HasSuffix(ref, "@"+digest) || !strings.HasPrefix(ref, name) {
			t.Fatalf("ImageDigest(%q) = %q, %q: not the parts of the reference", ref, name, digest)
		}
		if want := name + ":sha256-" + hexPart; tag != want {
			t.Fatalf("ImagesTag(%q) = %q, want %q", ref, tag, want)
		}
		if verr != nil {
			return
		}
		if name == "" {
			t.Fatalf("ValidImageRef accepts %q, whose name is empty", ref)
		}
		pinned := name + "@" + digest
		if err := ValidImageRef(pinned); err != nil {
			t.Fatalf("%q is valid but its pinned form %q is not: %v", ref, pinned, err)
		}
		if _, d, ok := ImageDigest(pinned); !ok || d != digest {
			t.Fatalf("pinned form %q of %q has digest %q, want %q", pinned, ref, d, digest)
		}
	})
}
