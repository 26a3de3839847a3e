package containers

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestPullErrorWraps: a pull error keeps its cause in the chain (so the
// out-of-space check of kill-then-download sees ENOSPC, and a cancelled
// context is recognisable) besides ErrPull or ErrDigestMismatch.
func TestPullErrorWraps(t *testing.T) {
	p, err := parsePinned("127.0.0.1:5000/svc@sha256:" + fmt.Sprintf("%064x", 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cause error
		kind  error
	}{
		{fmt.Errorf("write layer: %w", syscall.ENOSPC), ErrPull},
		{context.Canceled, ErrPull},
		{errors.New("manifest verification failed for digest"), ErrDigestMismatch},
	} {
		err := pullError(p, tc.cause)
		if !errors.Is(err, tc.kind) || !errors.Is(err, tc.cause) {
			t.Errorf("pullError(%v) = %v: want it to wrap %v and the cause", tc.cause, err, tc.kind)
		}
	}
	if err := pullError(p, nil); err != nil {
		t.Errorf("pullError(nil) = %v", err)
	}
}
