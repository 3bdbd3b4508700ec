// Package tokens keeps OAuth tokens encrypted at rest and hands out fresh
// access tokens: the Store (SQLite, PostgreSQL or memory, chosen by URL) and
// the refresh engine, Source, an oauth2.TokenSource.
//
// A program that has logged an account in saves what the login returned,
// then asks a Source for access tokens on every connection:
//
//	store, err := tokens.Open(ctx, "sqlite:"+path, nil) // key from the OS keyring or a key file
//	…
//	err = tokens.ReplaceLogin(ctx, store, "work", "imap", tok) // after `mailoauth login work`: the old login's tokens go, atomically
//	…
//	src, err := tokens.NewSource(tokens.Config{
//		Store:     store,
//		Refresher: refresher, // calls the token endpoint; see Refresher
//		Account:   "work",
//		Resource:  "imap",
//		Scopes:    []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"},
//	})
//	tok, err := src.TokenContext(ctx)
//	if errors.Is(err, tokens.ErrReloginRequired) {
//		// the error says which command to run: mailoauth login work
//	}
//
// Everything that must hold under concurrency and crashes is here rather
// than in its callers: one refresh however many goroutines and processes
// ask, the rotated refresh token stored before the access token is used,
// "re-login needed" shared through the store so nobody hammers the server,
// and atomic writes that survive kill -9.
package tokens
