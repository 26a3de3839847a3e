package delta

import "bytes"

// control is one bsdiff control: len(diff) bytes are old bytes plus diff,
// then extra bytes verbatim, then the old position moves by seek.
type control struct {
	diff, extra []byte
	seek        int64
}

// suffixArray is the sorted suffixes of old, for bsdiff's longest-match search.
type suffixArray struct {
	old []byte
	I   []int32 // len(old)+1 entries; I[0] is the empty suffix
}

// newSuffixArray sorts the suffixes of old with Larsson and Sadakane's
// qsufsort, as bsdiff does. old must be shorter than 2 GiB.
func newSuffixArray(old []byte) *suffixArray {
	n := len(old)
	I := make([]int32, n+1)
	V := make([]int32, n+1)
	var buckets [256]int32
	for _, c := range old {
		buckets[c]++
	}
	for i := 1; i < 256; i++ {
		buckets[i] += buckets[i-1]
	}
	for i := 255; i > 0; i-- {
		buckets[i] = buckets[i-1]
	}
	buckets[0] = 0
	for i, c := range old {
		buckets[c]++
		I[buckets[c]] = int32(i)
	}
	I[0] = int32(n)
	for i, c := range old {
		V[i] = buckets[c]
	}
	V[n] = 0
	for i := 1; i < 256; i++ {
		if buckets[i] == buckets[i-1]+1 {
			I[buckets[i]] = -1
		}
	}
	I[0] = -1
	for h := int32(1); I[0] != -int32(n+1); h += h {
		var ln int32
		i := int32(0)
		for i < int32(n+1) {
			if I[i] < 0 {
				ln -= I[i]
				i -= I[i]
			} else {
				if ln != 0 {
					I[i-ln] = -ln
				}
				ln = V[I[i]] + 1 - i
				split(I, V, i, ln, h)
				i += ln
				ln = 0
			}
		}
		if ln != 0 {
			I[i-ln] = -ln
		}
	}
	for i := 0; i < n+1; i++ {
		I[V[i]] = int32(i)
	}
	return &suffixArray{old: old, I: I}
}

func split(I, V []int32, start, ln, h int32) {
	if ln < 16 {
		var j int32
		for k := start; k < start+ln; k += j {
			j = 1
			x := V[I[k]+h]
			for i := int32(1); k+i < start+ln; i++ {
				if v := V[I[k+i]+h]; v < x {
					x = v
					j = 0
				}
				if V[I[k+i]+h] == x {
					I[k+j], I[k+i] = I[k+i], I[k+j]
					j++
				}
			}
			for i := int32(0); i < j; i++ {
				V[I[k+i]] = k + j - 1
			}
			if j == 1 {
				I[k] = -1
			}
		}
		return
	}
	x := V[I[start+ln/2]+h]
	var jj, kk int32
	for i := start; i < start+ln; i++ {
		if v := V[I[i]+h]; v < x {
			jj++
		} else if v == x {
			kk++
		}
	}
	jj += start
	kk += jj
	i, j, k := start, int32(0), int32(0)
	for i < jj {
		if v := V[I[i]+h]; v < x {
			i++
		} else if v == x {
			I[i], I[jj+j] = I[jj+j], I[i]
			j++
		} else {
			I[i], I[kk+k] = I[kk+k], I[i]
			k++
		}
	}
	for jj+j < kk {
		if V[I[jj+j]+h] == x {
			j++
		} else {
			I[jj+j], I[kk+k] = I[kk+k], I[jj+j]
			k++
		}
	}
	if jj > start {
		split(I, V, start, jj-start, h)
	}
	for i := int32(0); i < kk-jj; i++ {
		V[I[jj+i]] = kk - 1
	}
	if jj == kk-1 {
		I[jj] = -1
	}
	if start+ln > kk {
		split(I, V, kk, start+ln-kk, h)
	}
}

// maxMatch caps the bytes compared per match: it bounds the cost of long
// runs of equal bytes (zeros) without changing what a patch can express.
const maxMatch = 1 << 16

func matchLen(a, b []byte) int {
	n := min(len(a), len(b), maxMatch)
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// search returns the position in old and length of the longest match of
// the prefix of nw.
func (sa *suffixArray) search(nw []byte) (pos, n int) {
	st, en := 0, len(sa.old)
	for en-st >= 2 {
		x := st + (en-st)/2
		o := sa.old[sa.I[x]:]
		if bytes.Compare(o[:min(len(o), len(nw), maxMatch)], nw[:min(len(o), len(nw), maxMatch)]) < 0 {
			st = x
		} else {
			en = x
		}
	}
	x := matchLen(sa.old[sa.I[st]:], nw)
	y := matchLen(sa.old[sa.I[en]:], nw)
	if x > y {
		return int(sa.I[st]), x
	}
	return int(sa.I[en]), y
}

// bsdiff returns the controls that make nw from the old of sa (Colin
// Percival's bsdiff 4 algorithm) and the old position the first control
// starts at. Every control makes at least one byte.
func bsdiff(sa *suffixArray, nw []byte) (start int64, ctrls []control) {
	old := sa.old
	oldsize, newsize := len(old), len(nw)
	if oldsize == 0 {
		return 0, []control{{extra: nw}}
	}
	var pendingSeek int64
	scan, ln, pos := 0, 0, 0
	lastscan, lastpos, lastoffset := 0, 0, 0
	for scan < newsize {
		oldscore := 0
		scan += ln
		for scsc := scan; scan < newsize; scan++ {
			pos, ln = sa.search(nw[scan:])
			for ; scsc < scan+ln; scsc++ {
				if scsc+lastoffset < oldsize && old[scsc+lastoffset] == nw[scsc] {
					oldscore++
				}
			}
			if (ln == oldscore && ln != 0) || ln > oldscore+8 {
				break
			}
			if scan+lastoffset < oldsize && old[scan+lastoffset] == nw[scan] {
				oldscore--
			}
		}
		if ln == oldscore && scan != newsize {
			continue
		}
		s, sf, lenf := 0, 0, 0
		for i := 0; lastscan+i < scan && lastpos+i < oldsize; {
			if old[lastpos+i] == nw[lastscan+i] {
				s++
			}
			i++
			if s*2-i > sf*2-lenf {
				sf, lenf = s, i
			}
		}
		lenb := 0
		if scan < newsize {
			s, sb := 0, 0
			for i := 1; scan >= lastscan+i && pos >= i; i++ {
				if old[pos-i] == nw[scan-i] {
					s++
				}
				if s*2-i > sb*2-lenb {
					sb, lenb = s, i
				}
			}
		}
		if lastscan+lenf > scan-lenb {
			overlap := (lastscan + lenf) - (scan - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if nw[lastscan+lenf-overlap+i] == old[lastpos+lenf-overlap+i] {
					s++
				}
				if nw[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		diff := make([]byte, lenf)
		for i := range diff {
			diff[i] = nw[lastscan+i] - old[lastpos+i]
		}
		extra := nw[lastscan+lenf : scan-lenb]
		seek := int64((pos - lenb) - (lastpos + lenf))
		switch {
		case len(diff)+len(extra) != 0:
			ctrls = append(ctrls, control{diff: diff, extra: extra, seek: seek})
		case len(ctrls) > 0:
			ctrls[len(ctrls)-1].seek += seek
		default:
			pendingSeek += seek
		}
		lastscan = scan - lenb
		lastpos = pos - lenb
		lastoffset = pos - scan
	}
	return pendingSeek, ctrls
}
