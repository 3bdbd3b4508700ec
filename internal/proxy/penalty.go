package proxy

import (
	"sync"
	"time"
)

// Login penalty: each failed login from one client address for one user
// name doubles the wait before the failure is answered, from 1 s up to
// 30 s; a success clears it, and it is forgotten after 15 quiet minutes.
// It makes guessing slow without ever locking the real user out, and it
// touches nothing but this map (never a token).
const (
	penaltyBase   = time.Second
	penaltyMax    = 30 * time.Second
	penaltyForget = 15 * time.Minute
	penaltyCap    = 10000 // entries; beyond it the stale ones are swept
)

type penalty struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*strike
}

type strike struct {
	n    int
	last time.Time
}

func newPenalty(now func() time.Time) *penalty {
	return &penalty{now: now, m: map[string]*strike{}}
}

// fail records a failure for key and returns how long to wait.
func (p *penalty) fail(key string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.m) >= penaltyCap {
		for k, s := range p.m {
			if now.Sub(s.last) > penaltyForget {
				delete(p.m, k)
			}
		}
	}
	s := p.m[key]
	if s == nil || now.Sub(s.last) > penaltyForget {
		s = &strike{}
		if len(p.m) < 4*penaltyCap {
			p.m[key] = s
		}
	}
	s.n++
	s.last = now
	d := penaltyBase
	for i := 1; i < s.n && d < penaltyMax; i++ {
		d *= 2
	}
	return min(d, penaltyMax)
}

// ok clears key after a successful login.
func (p *penalty) ok(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, key)
}
