package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkTokenCommandCached measures the wall time of the built
// `mailoauth token ACCOUNT` binary with a cached access token: what a mail
// client pays on every connection (process start, config parse, store open,
// one record read and decrypt; no network). It reports the median too,
// which is what the goal is stated in.
//
//	go test ./internal/cli -run '^$' -bench TokenCommandCached -benchtime 50x
func BenchmarkTokenCommandCached(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "mailoauth")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/mailoauth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	e := newEmuEnv(b)
	e.login("dev")
	measure := func(b *testing.B, args ...string) {
		run := func() {
			cmd := exec.Command(bin, args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", args, err, out)
			}
		}
		run() // warm the page cache
		times := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			run()
			times = append(times, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(times)
		b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	}
	b.Run("token", func(b *testing.B) { measure(b, "--config", e.cfg, "token", "dev") })
	// The floor: starting the same binary for a command that reads nothing.
	b.Run("version-baseline", func(b *testing.B) { measure(b, "version") })
}
