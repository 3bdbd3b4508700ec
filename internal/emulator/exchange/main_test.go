package exchange

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Close stops every server goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
