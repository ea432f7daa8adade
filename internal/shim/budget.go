package shim

import "sync"

// budget bounds the bytes of GPU request bodies the shim holds in memory at
// once, over every request reading its body, waiting in line or being
// forwarded (Config.MaxBuffered). Without it, memory grows with the number
// of uploads, not with the line's bound.
type budget struct {
	max int64

	mu   sync.Mutex
	used int64
	peak int64
}

// take reserves n bytes; it reports false, reserving nothing, when they do
// not fit.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || b.used+n > b.max {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

// give returns n bytes reserved with take.
func (b *budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// inUse returns the bytes reserved now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// highWater returns the most bytes ever reserved at once.
func (b *budget) highWater() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}
