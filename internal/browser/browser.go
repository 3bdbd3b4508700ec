// Package browser opens URLs in the user's web browser, behind a one-method
// interface so flows can be tested with a fake and run headless.
package browser

import (
	"io"

	clibrowser "github.com/cli/browser"
)

// Opener opens a URL for the user to visit.
type Opener interface {
	Open(url string) error
}

// OpenerFunc adapts a function to Opener.
type OpenerFunc func(url string) error

// Open calls f(url).
func (f OpenerFunc) Open(url string) error { return f(url) }

// System opens URLs with the operating system's browser (xdg-open,
// x-www-browser, wslview, open, start) via github.com/cli/browser, GitHub
// CLI's maintained fork of pkg/browser.
type System struct{}

func init() {
	// xdg-open and friends chatter on stdout, which is reserved for the
	// CLI's machine-readable output.
	clibrowser.Stdout = io.Discard
	clibrowser.Stderr = io.Discard
}

// Open opens url in the system browser.
func (System) Open(url string) error { return clibrowser.OpenURL(url) }

var (
	_ Opener = System{}
	_ Opener = OpenerFunc(nil)
)
