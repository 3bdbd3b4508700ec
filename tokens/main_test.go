package tokens

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/mailoauth/mailoauth/internal/keyring"
)

// childEnv, when set, makes the test binary act as one of the child
// processes of the herd and crash tests instead of running tests.
const childEnv = "MAILOAUTH_TOKENS_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	keyring.MockInit() // never touch the real keyring of whoever runs the tests
	code := m.Run()
	stopPostgres()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
