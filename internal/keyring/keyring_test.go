package keyring

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestMockRoundTrip(t *testing.T) {
	MockInit()
	if _, err := Get("svc", "u"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set: got %v, want ErrNotFound", err)
	}
	if err := Set("svc", "u", "secret"); err != nil {
		t.Fatal(err)
	}
	got, err := Get("svc", "u")
	if err != nil || got != "secret" {
		t.Fatalf("Get = %q, %v; want the stored value", got, err)
	}
	if err := Delete("svc", "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := Get("svc", "u"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: got %v, want ErrNotFound", err)
	}
}

func TestMockError(t *testing.T) {
	boom := errors.New("no dbus")
	MockInitWithError(boom)
	t.Cleanup(MockInit)
	if err := Set("svc", "u", "x"); !errors.Is(err, boom) {
		t.Fatalf("Set: got %v, want the backend error", err)
	}
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		start := time.Now()
		_, err := withTimeout(func() (string, error) { <-release; return "late", nil })
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d != Timeout {
			t.Fatalf("gave up after %v, want %v", d, Timeout)
		}
		close(release) // let the abandoned call finish so the bubble ends clean
	})
}
