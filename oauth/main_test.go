package oauth

import (
	"testing"

	"go.uber.org/goleak"
)

// The flows start goroutines (loopback server, paste reader, device
// polling): none may outlive a test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of http.DefaultClient, used by the fake
		// browsers, idle in the transport's pool.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
