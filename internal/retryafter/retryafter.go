// Package retryafter reads the Retry-After header of a throttled (429) or
// unavailable (503) response, for the token client (oauth), the refresh
// engine (tokens) and Graph mail (graph), which must all wait as the
// server asks and never forever.
//
// The standard library parses the HTTP-date form (http.ParseTime) but has
// no Retry-After reader, and no small library does only this; hence these
// few lines, shared so the three callers agree.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max caps the wait: a server asking for more than a day is broken or
// hostile, and waiting that long would look like a hang.
const Max = 24 * time.Hour

// Parse reads a Retry-After value (RFC 9110 §10.2.3): delay-seconds or an
// HTTP-date, relative to now. It returns 0 for an empty, malformed or
// negative value and for a date not after now, and at most Max, so a
// caller can always wait what it returns.
func Parse(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(Max/time.Second))) * time.Second
	}
	if isDigits(v) {
		return Max // more seconds than an int64 holds: as long as we ever wait
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), Max)
	}
	return 0
}

// Header is Parse of h's Retry-After.
func Header(h http.Header, now time.Time) time.Duration {
	return Parse(h.Get("Retry-After"), now)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
