package proxy

import (
	"context"
	"time"
)

// KeepTokensFresh asks TokenFunc for every account's token now and then
// every interval until ctx ends, so the token layer's refresh-ahead runs
// between logins and a client never waits on a refresh that could have
// been done earlier (a cached token costs the TokenFunc a memory read).
// Failures are logged once per account until the token comes back.
func (s *Server) KeepTokensFresh(ctx context.Context, interval time.Duration) {
	failing := map[string]bool{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for i := range s.cfg.Accounts {
			a := &s.cfg.Accounts[i]
			tctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
			_, err := s.cfg.Token(tctx, a.Name, s.cfg.Protocol)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !failing[a.Name]:
				failing[a.Name] = true
				s.log.Warn("no token for the account; its logins will fail until this is fixed", "account", a.Name, "err", err)
			case err == nil && failing[a.Name]:
				delete(failing, a.Name)
				s.log.Info("the account has a token again", "account", a.Name)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
