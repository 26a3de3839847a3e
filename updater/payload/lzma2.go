package payload

import "encoding/binary"

// An LZMA2 decoder for whole xz blocks held in memory, written after the LZMA
// specification's reference decoder (LzmaSpec.cpp in the LZMA SDK) and the LZMA2
// chunk rules of liblzma. A block is decoded straight into its output buffer, which
// doubles as the dictionary: no window copies, no allocation. This is the parallel
// path's decoder; it is several times lighter on the garbage collector than a
// streaming decoder, which matters for the memory bound.

const (
	lzmaStates     = 12
	lzmaPosBitsMax = 4
	probInit       = 1024
	matchMinLen    = 2
	endPosModel    = 14
	fullDistances  = 128
	alignBits      = 4
)

type rangeDecoder struct {
	in   []byte
	pos  int
	rng  uint32
	code uint32
}

func (r *rangeDecoder) init(in []byte) bool {
	if len(in) < 5 || in[0] != 0 {
		return false
	}
	r.in, r.pos = in, 5
	r.rng = 0xffffffff
	r.code = binary.BigEndian.Uint32(in[1:5])
	return r.code != r.rng
}

// next returns the next input byte; past the end it returns 0 and the overrun is
// seen by finished.
func (r *rangeDecoder) next() uint32 {
	var b byte
	if r.pos < len(r.in) {
		b = r.in[r.pos]
	}
	r.pos++
	return uint32(b)
}

func (r *rangeDecoder) bit(p *uint16) uint32 {
	v := uint32(*p)
	bound := (r.rng >> 11) * v
	var b uint32
	if r.code < bound {
		r.rng = bound
		*p = uint16(v + (2048-v)>>5)
	} else {
		r.rng -= bound
		r.code -= bound
		*p = uint16(v - v>>5)
		b = 1
	}
	if r.rng < 1<<24 {
		r.rng <<= 8
		r.code = r.code<<8 | r.next()
	}
	return b
}

func (r *rangeDecoder) direct(n uint32) uint32 {
	var res uint32
	for ; n > 0; n-- {
		r.rng >>= 1
		r.code -= r.rng
		t := 0 - (r.code >> 31)
		r.code += r.rng & t
		res = res<<1 + t + 1
		if r.rng < 1<<24 {
			r.rng <<= 8
			r.code = r.code<<8 | r.next()
		}
	}
	return res
}

// finished: all input consumed, nothing more, and the coder ended cleanly.
func (r *rangeDecoder) finished() bool { return r.pos == len(r.in) && r.code == 0 }

func (r *rangeDecoder) tree(probs []uint16, bits uint32) uint32 {
	m := uint32(1)
	for i := uint32(0); i < bits; i++ {
		m = m<<1 + r.bit(&probs[m])
	}
	return m - 1<<bits
}

func (r *rangeDecoder) reverseTree(probs []uint16, bits uint32) uint32 {
	m, sym := uint32(1), uint32(0)
	for i := uint32(0); i < bits; i++ {
		b := r.bit(&probs[m])
		m = m<<1 + b
		sym |= b << i
	}
	return sym
}

type lenProbs struct {
	choice, choice2 uint16
	low             [1 << lzmaPosBitsMax][8]uint16
	mid             [1 << lzmaPosBitsMax][8]uint16
	high            [256]uint16
}

func (l *lenProbs) decode(r *rangeDecoder, posState uint32) uint32 {
	if r.bit(&l.choice) == 0 {
		return r.tree(l.low[posState][:], 3)
	}
	if r.bit(&l.choice2) == 0 {
		return 8 + r.tree(l.mid[posState][:], 3)
	}
	return 16 + r.tree(l.high[:], 8)
}

// lzmaState is the LZMA decoder state kept across the chunks of a block.
type lzmaState struct {
	lc, lp, pb uint32
	state      uint32
	rep        [4]uint32

	isMatch    [lzmaStates << lzmaPosBitsMax]uint16
	isRep      [lzmaStates]uint16
	isRepG0    [lzmaStates]uint16
	isRepG1    [lzmaStates]uint16
	isRepG2    [lzmaStates]uint16
	isRep0Long [lzmaStates << lzmaPosBitsMax]uint16
	posSlot    [4][64]uint16
	posDec     [1 + fullDistances - endPosModel]uint16
	align      [1 << alignBits]uint16
	lenDec     lenProbs
	repLenDec  lenProbs
	lit        [0x300 << 4]uint16
}

func fillProbs(p []uint16) {
	for i := range p {
		p[i] = probInit
	}
}

func (s *lzmaState) reset() {
	s.state = 0
	s.rep = [4]uint32{}
	fillProbs(s.isMatch[:])
	fillProbs(s.isRep[:])
	fillProbs(s.isRepG0[:])
	fillProbs(s.isRepG1[:])
	fillProbs(s.isRepG2[:])
	fillProbs(s.isRep0Long[:])
	for i := range s.posSlot {
		fillProbs(s.posSlot[i][:])
	}
	fillProbs(s.posDec[:])
	fillProbs(s.align[:])
	for _, l := range []*lenProbs{&s.lenDec, &s.repLenDec} {
		l.choice, l.choice2 = probInit, probInit
		for i := range l.low {
			fillProbs(l.low[i][:])
			fillProbs(l.mid[i][:])
		}
		fillProbs(l.high[:])
	}
	fillProbs(s.lit[:0x300<<(s.lc+s.lp)])
}

// setProps reads an LZMA2 properties byte (lc+lp <= 4).
func (s *lzmaState) setProps(b byte) bool {
	if b >= 9*5*5 {
		return false
	}
	lc, lp, pb := uint32(b%9), uint32(b/9%5), uint32(b/45)
	if lc+lp > 4 {
		return false
	}
	s.lc, s.lp, s.pb = lc, lp, pb
	return true
}

// lzma2Decoder decodes the LZMA2 chunks of one xz block into a buffer that doubles
// as the dictionary. Chunks may come in several calls (segments); a caller that
// slides its buffer moves pos and dictStart with it.
type lzma2Decoder struct {
	st             lzmaState
	dictSize       int64
	pos, dictStart int
	needDictReset  bool
	needProps      bool
}

// startBlock prepares for a new block with the given dictionary size.
func (d *lzma2Decoder) startBlock(dictSize int64) {
	d.dictSize, d.pos, d.dictStart = dictSize, 0, 0
	d.needDictReset, d.needProps = true, true
}

// slide drops the first k bytes of the buffer.
func (d *lzma2Decoder) slide(k int) {
	d.pos -= k
	d.dictStart -= k
}

// decode decodes whole chunks (no end marker) into out[d.pos:]; the chunks must not
// produce more than fits.
func (d *lzma2Decoder) decode(data, out []byte) error {
	s := &d.st
	var rc rangeDecoder
	for len(data) > 0 {
		control := data[0]
		switch {
		case control == 1 || control == 2:
			if control == 1 {
				d.dictStart, d.needDictReset, d.needProps = d.pos, false, true
			} else if d.needDictReset {
				return formatErr("lzma2 chunk without a dictionary reset")
			}
			if len(data) < 3 {
				return formatErr("truncated lzma2 chunk")
			}
			n := int(binary.BigEndian.Uint16(data[1:3])) + 1
			if len(data) < 3+n || n > len(out)-d.pos {
				return formatErr("lzma2 chunk overruns")
			}
			d.pos += copy(out[d.pos:], data[3:3+n])
			data = data[3+n:]
			continue
		case control < 0x80:
			return formatErr("bad lzma2 chunk control byte %#x", control)
		}
		if control >= 0xe0 {
			d.dictStart, d.needDictReset = d.pos, false
		} else if d.needDictReset {
			return formatErr("lzma2 chunk without a dictionary reset")
		}
		hdr := 5
		if control >= 0xc0 {
			hdr = 6
		}
		if len(data) < hdr {
			return formatErr("truncated lzma2 chunk")
		}
		unpacked := (int(control&0x1f)<<16 | int(data[1])<<8 | int(data[2])) + 1
		packed := int(binary.BigEndian.Uint16(data[3:5])) + 1
		switch {
		case control >= 0xc0:
			if !s.setProps(data[5]) {
				return formatErr("bad lzma properties %#x", data[5])
			}
			d.needProps = false
			s.reset()
		case d.needProps:
			return formatErr("lzma2 chunk without properties")
		case control >= 0xa0:
			s.reset()
		}
		if len(data) < hdr+packed || unpacked > len(out)-d.pos {
			return formatErr("lzma2 chunk overruns")
		}
		if !rc.init(data[hdr : hdr+packed]) {
			return formatErr("bad range coder start")
		}
		var err error
		if d.pos, err = s.decodeChunk(&rc, out, d.pos, d.pos+unpacked, d.dictStart, d.dictSize); err != nil {
			return err
		}
		if !rc.finished() {
			return formatErr("lzma chunk data does not end where its header says")
		}
		data = data[hdr+packed:]
	}
	return nil
}

// decodeChunk decodes LZMA data into out[pos:end].
func (s *lzmaState) decodeChunk(rc *rangeDecoder, out []byte, pos, end, dictStart int, dictSize int64) (int, error) {
	pbMask := uint32(1)<<s.pb - 1
	lpMask := uint32(1)<<s.lp - 1
	lc := s.lc
	state := s.state
	rep0, rep1, rep2, rep3 := s.rep[0], s.rep[1], s.rep[2], s.rep[3]
	for pos < end {
		if rc.pos > len(rc.in)+4 {
			return pos, formatErr("lzma chunk data ends early")
		}
		rel := pos - dictStart // bytes since the dictionary reset
		posState := uint32(rel) & pbMask
		if rc.bit(&s.isMatch[state<<lzmaPosBitsMax+posState]) == 0 {
			var prev uint32
			if rel > 0 {
				prev = uint32(out[pos-1])
			}
			base := 0x300 * (((uint32(rel) & lpMask) << lc) + prev>>(8-lc))
			probs := s.lit[base : base+0x300]
			sym := uint32(1)
			if state >= 7 {
				if int(rep0) >= rel || int(rep0) >= pos {
					return pos, formatErr("lzma distance beyond the data")
				}
				match := uint32(out[pos-int(rep0)-1])
				for sym < 0x100 {
					mbit := (match >> 7) & 1
					match <<= 1
					b := rc.bit(&probs[((1+mbit)<<8)+sym])
					sym = sym<<1 | b
					if mbit != b {
						break
					}
				}
			}
			for sym < 0x100 {
				sym = sym<<1 | rc.bit(&probs[sym])
			}
			out[pos] = byte(sym)
			pos++
			switch {
			case state < 4:
				state = 0
			case state < 10:
				state -= 3
			default:
				state -= 6
			}
			continue
		}
		var n uint32
		if rc.bit(&s.isRep[state]) != 0 {
			if rel == 0 {
				return pos, formatErr("lzma repeat before any data")
			}
			if rc.bit(&s.isRepG0[state]) == 0 {
				if rc.bit(&s.isRep0Long[state<<lzmaPosBitsMax+posState]) == 0 {
					if state < 7 {
						state = 9
					} else {
						state = 11
					}
					if int(rep0) >= rel || int(rep0) >= pos {
						return pos, formatErr("lzma distance beyond the data")
					}
					out[pos] = out[pos-int(rep0)-1]
					pos++
					continue
				}
			} else {
				var dist uint32
				if rc.bit(&s.isRepG1[state]) == 0 {
					dist = rep1
				} else {
					if rc.bit(&s.isRepG2[state]) == 0 {
						dist = rep2
					} else {
						dist = rep3
						rep3 = rep2
					}
					rep2 = rep1
				}
				rep1 = rep0
				rep0 = dist
			}
			n = s.repLenDec.decode(rc, posState)
			if state < 7 {
				state = 8
			} else {
				state = 11
			}
		} else {
			rep3, rep2, rep1 = rep2, rep1, rep0
			n = s.lenDec.decode(rc, posState)
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
			rep0 = s.distance(rc, n)
			if rep0 == 0xffffffff {
				return pos, formatErr("lzma end marker inside lzma2")
			}
		}
		n += matchMinLen
		if int(rep0) >= rel || int(rep0) >= pos || int64(rep0) >= dictSize {
			return pos, formatErr("lzma distance beyond the dictionary")
		}
		if int(n) > end-pos {
			return pos, formatErr("lzma match overruns the chunk")
		}
		from := pos - int(rep0) - 1
		if int(rep0)+1 >= int(n) {
			copy(out[pos:pos+int(n)], out[from:from+int(n)])
		} else {
			for i := 0; i < int(n); i++ {
				out[pos+i] = out[from+i]
			}
		}
		pos += int(n)
	}
	if rc.pos > len(rc.in) {
		return pos, formatErr("lzma chunk data ends early")
	}
	s.state = state
	s.rep = [4]uint32{rep0, rep1, rep2, rep3}
	return pos, nil
}

func (s *lzmaState) distance(rc *rangeDecoder, n uint32) uint32 {
	lenState := min(n, 3)
	slot := rc.tree(s.posSlot[lenState][:], 6)
	if slot < 4 {
		return slot
	}
	direct := slot>>1 - 1
	dist := (2 | slot&1) << direct
	if slot < endPosModel {
		return dist + rc.reverseTree(s.posDec[dist-slot:], direct)
	}
	dist += rc.direct(direct-alignBits) << alignBits
	return dist + rc.reverseTree(s.align[:], alignBits)
}
