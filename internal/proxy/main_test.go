package proxy

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

var testTempDirs []string

func osMkdirTemp() (string, error) {
	d, err := os.MkdirTemp("", "proxytest")
	if err == nil {
		testTempDirs = append(testTempDirs, d)
	}
	return d, err
}

// TestMain checks for leaked goroutines (every session, relay and upstream
// login must end) and removes the shared password file's directory.
func TestMain(m *testing.M) {
	switch os.Getenv("MAILOAUTH_BENCH_CHILD") {
	case "1":
		os.Exit(runBenchChild()) // the benchmarks' proxy process (bench_child_test.go)
	case "upstream":
		os.Exit(runBenchUpstream())
	}
	code := m.Run()
	for _, d := range testTempDirs {
		os.RemoveAll(d)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
