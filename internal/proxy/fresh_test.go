package proxy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKeepTokensFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var calls []time.Duration
		fail := false
		start := time.Now()
		var logs bytes.Buffer
		srv, err := New(Config{
			Protocol: "imap",
			Accounts: []Account{{Name: "work", Email: testEmail, Upstream: mustURL(t, "imaps://imap.example.test")}},
			Token: func(ctx context.Context, account, protocol string) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, time.Since(start))
				if fail {
					return "", errors.New("refresh refused")
				}
				return "t", nil
			},
			Passwords: fastVerifier{},
			Logger:    slogTo(&logs),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); srv.KeepTokensFresh(ctx, time.Minute) }()
		time.Sleep(150 * time.Second)
		synctest.Wait()
		mu.Lock()
		fail = true
		mu.Unlock()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		cancel()
		<-done
		want := []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("token calls (-want +got):\n%s", diff)
		}
		if n := strings.Count(logs.String(), "no token for the account"); n != 1 {
			t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
		}
	})
}
