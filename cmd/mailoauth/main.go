// Command mailoauth gets, keeps and uses OAuth 2.0 tokens for mail.
// Everything lives in internal/cli; this file only runs it.
package main

import (
	"os"

	"github.com/mailoauth/mailoauth/internal/cli"
)

func main() { os.Exit(cli.Main()) }
