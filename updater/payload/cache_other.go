//go:build !linux

package payload

import "os"

// dropCache is a no-op where posix_fadvise is not available: the read-back then may
// be served from the page cache.
func dropCache(f *os.File, off, size int64) {}
