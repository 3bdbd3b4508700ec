// Package mailclient logs in to IMAP, POP3 and SMTP servers with an OAuth
// 2.0 access token and reports, step by step, what worked and, when not,
// why: the server's exact reply and a hint for replies we know (Exchange
// Online's "535 5.7.139 … disabled for the Mailbox", "535 5.7.3", IMAP "NO
// AUTHENTICATE failed." and Dovecot's and Gmail's JSON challenges).
//
// It is the library under `mailoauth check` and `mailoauth send`: the CLI
// resolves an account to a server URL, a user and a token, and calls
// CheckIMAP, CheckPOP3, CheckSMTP or Send. The package takes the token as a
// string and knows nothing about where it came from (no import of oauth or
// tokens: data flows one way).
//
// Servers are named by URL; the scheme says the protocol and the transport
// security, and verification of the server's certificate is always on:
//
//	imaps://host:993            implicit TLS
//	imap://host:143             STARTTLS, required (refused if not offered)
//	imap+insecure://127.0.0.1:N plain text, loopback only (tests, local proxies)
//
// and the same for pop3s/pop3/pop3+insecure and smtps/smtp/smtp+insecure.
//
//	srv, _ := mailclient.ParseURL("imaps://outlook.office365.com")
//	rep, err := mailclient.CheckIMAP(ctx, srv, mailclient.Options{User: "me@contoso.com", Token: tok})
//	fmt.Print(rep) // one line per step
//
// The name is not "mail" so that callers can still import net/mail and
// github.com/emersion/go-message/mail without renaming.
package mailclient
