package emulator

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// Server must be closed and every page flow must end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
