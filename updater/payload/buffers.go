package payload

import (
	"context"
	"sync"
)

// bufferBudget hands out byte buffers and bounds the bytes they hold, in use or kept
// for reuse. Buffers are reused, so a long write produces almost no garbage and the
// heap does not grow with the image size.
type bufferBudget struct {
	mu      sync.Mutex
	limit   int
	inUse   int // capacity of the buffers handed out
	free    [][]byte
	freeCap int
	changed chan struct{} // closed and replaced when inUse shrinks
}

// bufferClass rounds buffer sizes up so buffers are reused across blocks of
// slightly different sizes.
const bufferClass = 256 << 10

func newBufferBudget(limit int) *bufferBudget {
	return &bufferBudget{limit: limit, changed: make(chan struct{})}
}

// get returns a buffer of length n, waiting until the budget allows it. A request
// larger than the whole budget is served once nothing else is in use.
func (b *bufferBudget) get(ctx context.Context, n int) ([]byte, error) {
	want := (n + bufferClass - 1) / bufferClass * bufferClass
	if want == 0 {
		want = bufferClass
	}
	for {
		b.mu.Lock()
		if b.inUse == 0 || b.inUse+want <= b.limit {
			buf := b.take(want)
			b.inUse += cap(buf)
			b.mu.Unlock()
			return buf[:n], nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// take reuses the smallest free buffer that fits, else allocates, first dropping
// free buffers so that everything held stays within the limit.
func (b *bufferBudget) take(want int) []byte {
	best := -1
	for i, f := range b.free {
		if cap(f) >= want && (best < 0 || cap(f) < cap(b.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		buf := b.free[best]
		b.free = append(b.free[:best], b.free[best+1:]...)
		b.freeCap -= cap(buf)
		return buf
	}
	for len(b.free) > 0 && b.inUse+b.freeCap+want > b.limit {
		b.freeCap -= cap(b.free[0])
		b.free[0] = nil
		b.free = b.free[1:]
	}
	return make([]byte, want)
}

// put returns a buffer from get.
func (b *bufferBudget) put(buf []byte) {
	if buf == nil {
		return
	}
	b.mu.Lock()
	b.inUse -= cap(buf)
	b.free = append(b.free, buf[:cap(buf)])
	b.freeCap += cap(buf)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}
