package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// hookEvent is what a hook learns about an event. It has no token field on
// purpose: a hook that needs one runs `mailoauth token` itself.
type hookEvent struct {
	// Event: "refreshed", "new" (a login found) or "removed" (its token
	// left the store: a logout) for on_token, like pizauth's
	// token_event_cmd; "error" (on_error); "relogin" (on_relogin).
	Event    string
	Account  string
	Resource string
	Reason   string    // why (error, relogin)
	Command  string    // what the user should run (relogin)
	Expiry   time.Time // of the new access token (refreshed)
}

// hookRunner runs the configured commands, each in its own goroutine, so
// the refresh engine's Notify never waits for a slow script.
type hookRunner struct {
	hooks   Hooks
	timeout time.Duration
	log     *slog.Logger
	wg      sync.WaitGroup

	mu      sync.Mutex
	running map[*exec.Cmd]struct{}
	stopped bool // no new hook starts (shutdown)
}

// passEnv are the daemon's environment variables a hook inherits: enough
// to find programs and reach the desktop (notify-send, a mail client), and
// nothing else, so a secret the config takes from an env: reference never
// reaches a hook.
var passEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
	"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
	"DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "MAILOAUTH_CONFIG", "MAILOAUTH_STATE_DIR"}

// hookEnv builds a hook's environment from the daemon's (filtered) and e.
func hookEnv(e hookEvent) []string {
	var env []string
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LC_") {
			env = append(env, kv)
		}
	}
	clean := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	env = append(env,
		"MAILOAUTH_EVENT="+e.Event,
		"MAILOAUTH_ACCOUNT="+clean(e.Account),
		"MAILOAUTH_RESOURCE="+clean(e.Resource),
		"MAILOAUTH_REASON="+clean(e.Reason),
		"MAILOAUTH_COMMAND="+clean(e.Command),
	)
	if !e.Expiry.IsZero() {
		env = append(env, "MAILOAUTH_EXPIRY="+e.Expiry.UTC().Format(time.RFC3339))
	}
	return env
}

// command is the hook configured for an event, "" when none.
func (h *hookRunner) command(event string) string {
	switch event {
	case "refreshed", "new", "removed":
		return h.hooks.OnToken
	case "error":
		return h.hooks.OnError
	case "relogin":
		return h.hooks.OnRelogin
	}
	return ""
}

// run starts the hook for e, if one is configured, and returns at once.
func (h *hookRunner) run(e hookEvent) {
	script := h.command(e.Event)
	if script == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		// A refresh detached from a request can end after the shutdown
		// began; its hook would race the final wait.
		h.log.Info("hook not run: the daemon is stopping", "hook", e.Event, "account", e.Account)
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.exec(script, e)
	}()
}

func (h *hookRunner) exec(script string, e hookEvent) {
	id := randomID()
	log := h.log.With("hook", e.Event, "account", e.Account, "run", id)
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = hookEnv(e)
	cmd.Stdin = nil
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	setProcessGroup(cmd) // the timeout kills the script and its children
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		log.Warn("hook did not start", "err", err)
		return
	}
	h.mu.Lock()
	if h.running == nil {
		h.running = map[*exec.Cmd]struct{}{}
	}
	h.running[cmd] = struct{}{}
	h.mu.Unlock()
	err := cmd.Wait()
	h.mu.Lock()
	delete(h.running, cmd)
	h.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		log.Warn("hook killed after its timeout", "timeout", h.timeout, "output", out.String())
	case err != nil:
		log.Warn("hook failed", "err", err, "output", out.String())
	default:
		log.Debug("hook ran", "took", time.Since(start))
	}
}

// stop lets no new hook start, then waits for the running ones as wait does.
func (h *hookRunner) stop(ctx context.Context) {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.wait(ctx)
}

// wait waits for the running hooks until ctx ends, then kills them.
func (h *hookRunner) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	h.mu.Lock()
	for cmd := range h.running {
		killProcessGroup(cmd)
	}
	h.mu.Unlock()
	<-done
}

// limitedBuffer keeps the first 4 KiB a hook prints, for the log.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
