// Package e2e holds end-to-end integration tests in which every server is
// third-party: oidc-provider (a certified OpenID provider) issues the
// tokens, Dovecot validates them by RFC 7662 introspection against that
// same provider, and mailoauth sits in the middle only as the client —
// the CLI signing in, storing and refreshing, and real mail clients
// (Python's imaplib, poplib and smtplib, curl, mpop, neomutt, mbsync)
// using the tokens `mailoauth token` prints: the recipes of
// docs/mail-clients.md. Nothing of ours is on the server side, so a
// pass means the chain works with software we did not write.
//
// The tests are named TestIntegration… and skip unless
// MAILOAUTH_INTEGRATION=1; installs are in .ci/setup.d (30-oidc-provider,
// 40-dovecot, 45-mail-clients, 46-python-clients).
package e2e
