//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package daemon

import "os"

// lockFile is a no-op where flock is missing: there, only the probe of the
// socket keeps a second daemon out.
func lockFile(string) (*os.File, error) { return nil, nil }

func unlockFile(*os.File) {}
