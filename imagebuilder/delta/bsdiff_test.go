package delta

import (
	"bytes"
	"math/rand"
	"testing"
)

// patch applies controls the way the device does.
func patch(old []byte, start int64, ctrls []control) []byte {
	var out []byte
	pos := start
	for _, c := range ctrls {
		for i, d := range c.diff {
			out = append(out, old[pos+int64(i)]+d)
		}
		pos += int64(len(c.diff))
		out = append(out, c.extra...)
		pos += c.seek
	}
	return out
}

func TestBsdiff(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	base := make([]byte, 50000)
	for i := range base {
		base[i] = byte(rnd.Intn(8)) // repetitive, like code
	}
	edit := func(b []byte) []byte {
		b = append([]byte{}, b...)
		for i := 0; i < 30; i++ {
			b[rnd.Intn(len(b))] ^= 0x40
		}
		return append(append(b[20000:], []byte("new text")...), b[:20000]...)
	}
	tests := []struct {
		name     string
		old, new []byte
	}{
		{"edited and moved", base, edit(base)},
		{"empty old", nil, []byte("all new")},
		{"empty new", base, nil},
		{"zeros", make([]byte, 100000), append(make([]byte, 70000), 1)},
		{"unrelated", base[:1000], []byte("nothing in common with the old bytes at all")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := newSuffixArray(tt.old)
			for i := 1; i < len(sa.I); i++ {
				if bytes.Compare(tt.old[sa.I[i-1]:], tt.old[sa.I[i]:]) >= 0 {
					t.Fatalf("suffix array not sorted at %d", i)
				}
			}
			start, ctrls := bsdiff(sa, tt.new)
			for i, c := range ctrls {
				if len(c.diff)+len(c.extra) == 0 {
					t.Fatalf("control %d makes no bytes", i)
				}
			}
			if got := patch(tt.old, start, ctrls); !bytes.Equal(got, tt.new) {
				t.Fatalf("patch makes %d bytes, want %d equal to the new", len(got), len(tt.new))
			}
		})
	}
}
