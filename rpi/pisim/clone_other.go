//go:build !linux

package pisim

import (
	"errors"
	"os"
)

// cloneFile is not available here: the data is copied.
func cloneFile(dst, src *os.File) error { return errors.ErrUnsupported }
