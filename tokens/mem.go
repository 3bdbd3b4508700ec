package tokens

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"time"
)

// memBackend keeps everything in a map: the "mem:" store, for tests and for
// programs that want the refresh engine without persistence. It is also what
// the synctest tests run against, since its lease clock is time.Now.
type memBackend struct {
	mu     sync.Mutex
	recs   map[string]map[Kind]Record
	leases map[string]Lease
	metas  map[string][]byte
}

func newMemBackend() *memBackend {
	return &memBackend{recs: map[string]map[Kind]Record{}, leases: map[string]Lease{}, metas: map[string][]byte{}}
}

func randomKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

func (m *memBackend) get(_ context.Context, account string, kind Kind) ([]byte, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[account][kind]
	if !ok {
		return nil, time.Time{}, ErrNotFound
	}
	return slices.Clone(r.Value), r.Updated, nil
}

func (m *memBackend) list(_ context.Context, account string) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Record{}
	for _, r := range m.recs[account] {
		r.Value = slices.Clone(r.Value)
		out = append(out, r)
	}
	return out, nil
}

func (m *memBackend) put(_ context.Context, lease *Lease, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if lease != nil {
		l, ok := m.leases[lease.Account]
		if !ok || l.Holder != lease.Holder || !now.Before(l.Expires) {
			return ErrLeaseLost
		}
	}
	for _, r := range recs {
		if r.Value == nil { // a tombstone
			delete(m.recs[r.Account], r.Kind)
			if len(m.recs[r.Account]) == 0 {
				delete(m.recs, r.Account)
			}
			continue
		}
		if m.recs[r.Account] == nil {
			m.recs[r.Account] = map[Kind]Record{}
		}
		r.Value = slices.Clone(r.Value)
		r.Updated = now
		m.recs[r.Account][r.Kind] = r
	}
	return nil
}

func (m *memBackend) deleteAccount(_ context.Context, account string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, account)
	delete(m.leases, account)
	return nil
}

func (m *memBackend) accounts(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []string{}
	for a, rs := range m.recs {
		if len(rs) > 0 {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *memBackend) acquire(_ context.Context, account, holder string, ttl time.Duration) (*Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if l, ok := m.leases[account]; ok && l.Holder != holder && now.Before(l.Expires) {
		return nil, ErrLeaseHeld
	}
	l := Lease{Account: account, Holder: holder, Expires: now.Add(ttl)}
	m.leases[account] = l
	return &l, nil
}

func (m *memBackend) release(_ context.Context, lease *Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[lease.Account]; ok && l.Holder == lease.Holder {
		delete(m.leases, lease.Account)
	}
	return nil
}

func (m *memBackend) meta(_ context.Context, name string, init []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.metas[name]; ok {
		return slices.Clone(v), nil
	}
	if init == nil {
		return nil, ErrNotFound
	}
	m.metas[name] = slices.Clone(init)
	return slices.Clone(init), nil
}

func (m *memBackend) close() error { return nil }
