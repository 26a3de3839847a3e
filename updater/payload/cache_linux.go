package payload

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCache asks the kernel to forget the cached pages of a region, so that the next
// read comes from the medium. Dirty pages are written first.
func dropCache(f *os.File, off, size int64) {
	fd := int(f.Fd())
	_ = unix.SyncFileRange(fd, off, size, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	_ = unix.Fadvise(fd, off, size, unix.FADV_DONTNEED)
}
