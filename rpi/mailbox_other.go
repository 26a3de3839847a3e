//go:build !linux

package rpi

import (
	"errors"
	"fmt"
)

// call is available only on Linux, where the vcio driver lives.
func (m Mailbox) call(buf *mboxBuffer) error {
	return fmt.Errorf("firmware mailbox %s: %w", m.Path, errors.ErrUnsupported)
}
