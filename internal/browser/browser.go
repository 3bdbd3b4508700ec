// Package browser opens URLs in the user's web browser. The flows take any
// opener through oauth.Browser (so tests and headless runs pass their own);
// this package is the default one.
package browser

import (
	"io"

	clibrowser "github.com/cli/browser"
)

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
