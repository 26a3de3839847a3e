//go:build !unix

package publish

// lock is a no-op where flock does not exist: run one writer at a time there.
func lock(dir string) (unlock func(), err error) { return func() {}, nil }
