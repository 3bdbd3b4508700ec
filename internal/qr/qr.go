// Package qr draws QR codes on a terminal, so a device sign-in URL can be
// scanned with a phone instead of typed.
package qr

import (
	"io"
	"os"

	"github.com/mdp/qrterminal/v3"
	"golang.org/x/term"
)

// Write draws text as a compact QR code (two rows per character, quiet zone
// included) with low error correction, which keeps a URL's code small
// enough for an 80-column terminal.
func Write(w io.Writer, text string) {
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         w,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      1,
	})
}

// ShouldDraw reports whether f is a terminal: a QR code in a log file or a
// pipe is only noise.
func ShouldDraw(f *os.File) bool {
	return f != nil && term.IsTerminal(int(f.Fd()))
}
