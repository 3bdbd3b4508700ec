package mailclient

import (
	"testing"

	"go.uber.org/goleak"
)

// go-imap runs a reader goroutine per connection; every check must end it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
