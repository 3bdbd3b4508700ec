package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// storeSuite is the conformance suite every Store runs: one test per promise
// of the Store contract (store.go). fresh prepares an empty store location
// and returns a function that opens it, any number of times.
type storeSuite struct {
	fresh func(t *testing.T) func(opts *Options) (Store, error)
}

var testKey = bytes.Repeat([]byte{7}, KeySize)

func (ss storeSuite) open(t *testing.T) (Store, func(opts *Options) (Store, error)) {
	t.Helper()
	opener := ss.fresh(t)
	s, err := opener(&Options{Key: testKey, NoKeyring: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opener
}

func (ss storeSuite) run(t *testing.T) {
	tests := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"GetMissing", ss.testGetMissing},
		{"PutGet", ss.testPutGet},
		{"PutAtomicMany", ss.testPutAtomicMany},
		{"Records", ss.testRecords},
		{"DeleteAndAccounts", ss.testDeleteAndAccounts},
		{"Lease", ss.testLease},
		{"PutUnderLease", ss.testPutUnderLease},
		{"LeaseExpires", ss.testLeaseExpires},
		{"LeaseExclusive", ss.testLeaseExclusive},
		{"Encrypted", ss.testEncrypted},
		{"MovedRecordFails", ss.testMovedRecordFails},
		{"WrongKey", ss.testWrongKey},
		{"Reopen", ss.testReopen},
		{"TombstoneAlone", ss.testTombstoneAlone},
		{"TombstoneWithWrites", ss.testTombstoneWithWrites},
		{"TombstoneUnderLease", ss.testTombstoneUnderLease},
		{"ReplaceLogin", ss.testReplaceLogin},
		{"ReplaceLoginUnreadable", ss.testReplaceLoginUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.f)
	}
}

func rec(account string, kind Kind, v string) Record {
	return Record{Account: account, Kind: kind, Value: []byte(v)}
}

func mustPut(t *testing.T, s Store, lease *Lease, recs ...Record) {
	t.Helper()
	if err := s.Put(t.Context(), lease, recs...); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func value(t *testing.T, s Store, account string, kind Kind) string {
	t.Helper()
	r, err := s.Get(t.Context(), account, kind)
	if errors.Is(err, ErrNotFound) {
		return "<none>"
	}
	if err != nil {
		t.Fatalf("Get %s %s: %v", account, kind, err)
	}
	return string(r.Value)
}

// Promise 1.
func (ss storeSuite) testGetMissing(t *testing.T) {
	s, _ := ss.open(t)
	if _, err := s.Get(t.Context(), "nobody", KindRefresh); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing record: got %v, want ErrNotFound", err)
	}
}

// Promises 1 and 2.
func (ss storeSuite) testPutGet(t *testing.T) {
	s, _ := ss.open(t)
	before := time.Now().Add(-time.Minute)
	mustPut(t, s, nil, rec("a", KindRefresh, "one"))
	mustPut(t, s, nil, rec("a", KindRefresh, "two"))
	r, err := s.Get(t.Context(), "a", KindRefresh)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("two", string(r.Value)); diff != "" {
		t.Errorf("value (-want +got):\n%s", diff)
	}
	if r.Account != "a" || r.Kind != KindRefresh || r.Updated.Before(before) {
		t.Errorf("record = %+v, want account a, kind refresh, Updated set", r)
	}
}

// Promise 2: several records in one Put land together.
func (ss storeSuite) testPutAtomicMany(t *testing.T) {
	s, _ := ss.open(t)
	mustPut(t, s, nil, rec("a", KindRefresh, "r1"), rec("a", AccessKind("imap"), "a1"), rec("a", KindState, "{}"))
	got := map[Kind]string{}
	for _, k := range []Kind{KindRefresh, AccessKind("imap"), KindState} {
		got[k] = value(t, s, "a", k)
	}
	want := map[Kind]string{KindRefresh: "r1", AccessKind("imap"): "a1", KindState: "{}"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A Put refused as a whole (lease lost) writes none of its records.
	lease := &Lease{Account: "a", Holder: "not-the-holder", Expires: time.Now().Add(time.Hour)}
	err := s.Put(t.Context(), lease, rec("a", KindRefresh, "r2"), rec("a", AccessKind("imap"), "a2"))
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Put with a lease never acquired: got %v, want ErrLeaseLost", err)
	}
	if v := value(t, s, "a", KindRefresh) + value(t, s, "a", AccessKind("imap")); v != "r1a1" {
		t.Errorf("after a refused Put: %q, want the old values r1a1", v)
	}
}

// Promise 4.
func (ss storeSuite) testRecords(t *testing.T) {
	s, _ := ss.open(t)
	mustPut(t, s, nil, rec("a", KindRefresh, "r"), rec("a", AccessKind("graph"), "g"), rec("b", KindRefresh, "x"))
	recs, err := s.Records(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	got := map[Kind]string{}
	for _, r := range recs {
		got[r.Kind] = string(r.Value)
	}
	if diff := cmp.Diff(map[Kind]string{KindRefresh: "r", AccessKind("graph"): "g"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	none, err := s.Records(t.Context(), "nobody")
	if err != nil || len(none) != 0 {
		t.Errorf("Records of an unknown account = %v, %v; want empty, nil", none, err)
	}
}

// Promises 5 and 6.
func (ss storeSuite) testDeleteAndAccounts(t *testing.T) {
	s, _ := ss.open(t)
	mustPut(t, s, nil, rec("zed", KindRefresh, "z"))
	mustPut(t, s, nil, rec("alice", KindRefresh, "a"), rec("alice", KindState, "{}"))
	mustPut(t, s, nil, rec("bob", KindRefresh, "b"))
	if _, err := s.Acquire(t.Context(), "alice", "h1", time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.Accounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice", "bob", "zed"}, got); diff != "" {
		t.Errorf("Accounts (-want +got):\n%s", diff)
	}
	if err := s.Delete(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "never-existed"); err != nil {
		t.Errorf("Delete of an unknown account: %v", err)
	}
	got, _ = s.Accounts(t.Context())
	if diff := cmp.Diff([]string{"bob", "zed"}, got); diff != "" {
		t.Errorf("Accounts after Delete (-want +got):\n%s", diff)
	}
	if v := value(t, s, "alice", KindState); v != "<none>" {
		t.Errorf("state after Delete = %q", v)
	}
	// The lease went with the account.
	if _, err := s.Acquire(t.Context(), "alice", "h2", time.Hour); err != nil {
		t.Errorf("Acquire after Delete: %v, want the lease to be gone", err)
	}
}

// Promises 7 and 8.
func (ss storeSuite) testLease(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	l1, err := s.Acquire(ctx, "a", "h1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if l1.Account != "a" || l1.Holder != "h1" || time.Until(l1.Expires) < 50*time.Minute {
		t.Errorf("lease = %+v", l1)
	}
	if _, err := s.Acquire(ctx, "a", "h2", time.Hour); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second holder: got %v, want ErrLeaseHeld", err)
	}
	if _, err := s.Acquire(ctx, "b", "h2", time.Hour); err != nil {
		t.Fatalf("lease on another account: %v", err)
	}
	if _, err := s.Acquire(ctx, "a", "h1", time.Hour); err != nil {
		t.Fatalf("renewal by the holder: %v", err)
	}
	// Releasing someone else's lease touches nothing.
	if err := s.Release(ctx, &Lease{Account: "a", Holder: "h2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "a", "h2", time.Hour); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("after a foreign Release: got %v, want ErrLeaseHeld", err)
	}
	if err := s.Release(ctx, l1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "a", "h2", time.Hour); err != nil {
		t.Fatalf("after Release: %v", err)
	}
	if err := s.Release(ctx, l1); err != nil { // stale lease: no error
		t.Fatalf("stale Release: %v", err)
	}
	if _, err := s.Acquire(ctx, "a", "h1", time.Hour); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("stale Release freed h2's lease: got %v", err)
	}
}

// Promise 3.
func (ss storeSuite) testPutUnderLease(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	l1, err := s.Acquire(ctx, "a", "h1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, l1, rec("a", KindRefresh, "by-h1"))
	if err := s.Release(ctx, l1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "a", "h2", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, l1, rec("a", KindRefresh, "late")); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Put with a lease taken over: got %v, want ErrLeaseLost", err)
	}
	if v := value(t, s, "a", KindRefresh); v != "by-h1" {
		t.Errorf("value = %q, want by-h1", v)
	}
}

// Promise 7: an expired lease (a crashed holder) does not block others.
func (ss storeSuite) testLeaseExpires(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	dead, err := s.Acquire(ctx, "a", "crashed", 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Polling for a real clock to pass (the store's clock may be a database
	// server's); bounded so a broken store fails instead of hanging.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Acquire(ctx, "a", "next", time.Hour)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLeaseHeld) || time.Now().After(deadline) {
			t.Fatalf("Acquire after the holder's lease expired: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Put(ctx, dead, rec("a", KindRefresh, "zombie")); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Put by the expired holder: got %v, want ErrLeaseLost", err)
	}
}

// Promise 7: of many concurrent callers exactly one wins.
func (ss storeSuite) testLeaseExclusive(t *testing.T) {
	s, _ := ss.open(t)
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range n {
		wg.Go(func() {
			_, err := s.Acquire(t.Context(), "a", fmt.Sprintf("h%d", i), time.Hour)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, ErrLeaseHeld):
				t.Errorf("Acquire: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent Acquire calls won, want exactly 1", wins, n)
	}
}

// Promise 9: what the backend holds is not the plaintext.
func (ss storeSuite) testEncrypted(t *testing.T) {
	s, _ := ss.open(t)
	secret := "refresh-token-SECRET-0123456789"
	mustPut(t, s, nil, rec("a", KindRefresh, secret))
	raw, _, err := s.(*store).b.get(t.Context(), "a", KindRefresh)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte("SECRET")) {
		t.Fatal("the backend holds the plaintext")
	}
}

// Promises 1 and 9: a sealed value copied to another account or kind fails.
func (ss storeSuite) testMovedRecordFails(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	mustPut(t, s, nil, rec("alice", KindRefresh, "alice's token"))
	b := s.(*store).b
	raw, _, err := b.get(ctx, "alice", KindRefresh)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []Record{{Account: "mallory", Kind: KindRefresh}, {Account: "alice", Kind: AccessKind("imap")}} {
		dst.Value = raw
		if err := b.put(ctx, nil, []Record{dst}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, dst.Account, dst.Kind); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Get of a value moved to %s %s: got %v, want ErrDecrypt", dst.Account, dst.Kind, err)
		}
	}
	// A flipped bit fails the same way.
	raw[len(raw)-1] ^= 1
	if err := b.put(ctx, nil, []Record{{Account: "alice", Kind: KindRefresh, Value: raw}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "alice", KindRefresh); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Get of a tampered value: got %v, want ErrDecrypt", err)
	}
}

// Opening with another key fails at once, not at the first Get.
func (ss storeSuite) testWrongKey(t *testing.T) {
	s, opener := ss.open(t)
	mustPut(t, s, nil, rec("a", KindRefresh, "v"))
	other, err := opener(&Options{Key: bytes.Repeat([]byte{8}, KeySize), NoKeyring: true})
	if err == nil {
		other.Close()
		t.Fatal("open with another key succeeded")
	}
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("got %v, want ErrWrongKey", err)
	}
}

// Data written through one handle is read through another (another process).
func (ss storeSuite) testReopen(t *testing.T) {
	s, opener := ss.open(t)
	mustPut(t, s, nil, rec("a", KindRefresh, "persisted"))
	s2, err := opener(&Options{Key: testKey, NoKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v := value(t, s2, "a", KindRefresh); v != "persisted" {
		t.Errorf("second handle reads %q", v)
	}
	if _, err := s2.Acquire(context.Background(), "a", "h1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(context.Background(), "a", "h2", time.Hour); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("lease taken through one handle is not seen through the other: %v", err)
	}
}

// tomb is a tombstone: a Record with a nil Value (promise 11).
func tomb(account string, kind Kind) Record { return Record{Account: account, Kind: kind} }

// kinds maps an account's records to their values, read with Records.
func kinds(t *testing.T, s Store, account string) map[Kind]string {
	t.Helper()
	recs, err := s.Records(t.Context(), account)
	if err != nil {
		t.Fatalf("Records %s: %v", account, err)
	}
	got := map[Kind]string{}
	for _, r := range recs {
		got[r.Kind] = string(r.Value)
	}
	return got
}

// Promise 11: a tombstone alone deletes one record and nothing else; a
// tombstone for a missing record is no error; an account whose last record
// is deleted is no longer listed.
func (ss storeSuite) testTombstoneAlone(t *testing.T) {
	s, _ := ss.open(t)
	mustPut(t, s, nil, rec("a", KindRefresh, "r"), rec("a", AccessKind("imap"), "i"), rec("b", AccessKind("imap"), "bi"))
	mustPut(t, s, nil, tomb("a", AccessKind("imap")))
	if diff := cmp.Diff(map[Kind]string{KindRefresh: "r"}, kinds(t, s, "a")); diff != "" {
		t.Errorf("account a (-want +got):\n%s", diff)
	}
	if _, err := s.Get(t.Context(), "a", AccessKind("imap")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a deleted record: got %v, want ErrNotFound", err)
	}
	if v := value(t, s, "b", AccessKind("imap")); v != "bi" {
		t.Errorf("another account's record of the same kind = %q, want bi", v)
	}
	mustPut(t, s, nil, tomb("a", AccessKind("never-written")), tomb("nobody", KindRefresh))
	mustPut(t, s, nil, tomb("b", AccessKind("imap")))
	got, err := s.Accounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a"}, got); diff != "" {
		t.Errorf("Accounts after deleting b's only record (-want +got):\n%s", diff)
	}
}

// Promises 2 and 11: tombstones and writes of one Put land together, in
// order; an empty non-nil value is stored, not a tombstone.
func (ss storeSuite) testTombstoneWithWrites(t *testing.T) {
	s, _ := ss.open(t)
	mustPut(t, s, nil, rec("a", KindRefresh, "r1"), rec("a", AccessKind("imap"), "i1"), rec("a", AccessKind("graph"), "g1"),
		rec("a", AccessKind("smtp"), "s1"))
	mustPut(t, s, nil,
		rec("a", KindRefresh, "r2"),
		tomb("a", AccessKind("imap")),
		rec("a", KindState, "{}"),
		rec("a", AccessKind("graph"), "g2"), tomb("a", AccessKind("graph")), // the later record wins
		tomb("a", AccessKind("smtp")), rec("a", AccessKind("smtp"), "s2"),
		Record{Account: "a", Kind: AccessKind("pop"), Value: []byte{}},
	)
	want := map[Kind]string{KindRefresh: "r2", KindState: "{}", AccessKind("smtp"): "s2", AccessKind("pop"): ""}
	if diff := cmp.Diff(want, kinds(t, s, "a")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The empty value is a record that decrypts to empty, not a missing one.
	r, err := s.Get(t.Context(), "a", AccessKind("pop"))
	if err != nil || len(r.Value) != 0 {
		t.Errorf("Get of an empty value = %q, %v; want empty, nil", r.Value, err)
	}
}

// Promises 3 and 11: under a lost lease a Put deletes nothing and writes
// nothing; under a held lease its tombstones apply.
func (ss storeSuite) testTombstoneUnderLease(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	mustPut(t, s, nil, rec("a", KindRefresh, "r1"), rec("a", AccessKind("imap"), "i1"))
	lost := &Lease{Account: "a", Holder: "not-the-holder", Expires: time.Now().Add(time.Hour)}
	if _, err := s.Acquire(ctx, "a", "the-holder", time.Hour); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctx, lost, tomb("a", AccessKind("imap")), rec("a", KindRefresh, "r2"))
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Put of a tombstone under a lost lease: got %v, want ErrLeaseLost", err)
	}
	if err := s.Put(ctx, lost, tomb("a", AccessKind("imap"))); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Put of a tombstone alone under a lost lease: got %v, want ErrLeaseLost", err)
	}
	if diff := cmp.Diff(map[Kind]string{KindRefresh: "r1", AccessKind("imap"): "i1"}, kinds(t, s, "a")); diff != "" {
		t.Errorf("after refused Puts (-want +got):\n%s", diff)
	}
	held, err := s.Acquire(ctx, "a", "the-holder", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, held, tomb("a", AccessKind("imap")), rec("a", KindRefresh, "r2"))
	if diff := cmp.Diff(map[Kind]string{KindRefresh: "r2"}, kinds(t, s, "a")); diff != "" {
		t.Errorf("after a Put under the held lease (-want +got):\n%s", diff)
	}
}

// tokenKinds maps an account's records to the token each holds (refresh
// token for KindRefresh, access token for access kinds) and the state's
// re-login mark, so a test can compare a whole account at once.
func tokenKinds(t *testing.T, s Store, account string) map[Kind]string {
	t.Helper()
	recs, err := s.Records(t.Context(), account)
	if err != nil {
		t.Fatalf("Records %s: %v", account, err)
	}
	got := map[Kind]string{}
	for _, r := range recs {
		switch _, isAccess := r.Kind.Resource(); {
		case r.Kind == KindState:
			st, err := LoadState(t.Context(), s, account)
			if err != nil {
				t.Fatal(err)
			}
			got[r.Kind] = fmt.Sprintf("relogin=%v", st.ReloginRequired)
		case r.Kind == KindRefresh:
			tok, err := decodeToken(r)
			if err != nil {
				t.Fatal(err)
			}
			got[r.Kind] = tok.RefreshToken
		case isAccess:
			tok, err := decodeToken(r)
			if err != nil {
				t.Fatal(err)
			}
			got[r.Kind] = tok.AccessToken
		default:
			got[r.Kind] = string(r.Value)
		}
	}
	return got
}

// ReplaceLogin leaves exactly the new login's records: the old login's
// access tokens of other resources and its re-login mark are gone, other
// accounts are untouched, and the lease it took is released.
func (ss storeSuite) testReplaceLogin(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := SaveLogin(ctx, s, "a", "imap", loginToken("rt-old", "at-old-imap", exp)); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, nil,
		TokenRecord("a", AccessKind("graph"), loginToken("", "at-old-graph", exp)),
		TokenRecord("a", AccessKind("smtp"), loginToken("", "at-old-smtp", exp)),
		StateRecord("a", State{ReloginRequired: true, Reason: "invalid_grant"}),
		rec("a", Kind("custom"), "x"))
	if err := SaveLogin(ctx, s, "b", "graph", loginToken("rt-b", "at-b", exp)); err != nil {
		t.Fatal(err)
	}

	if err := ReplaceLogin(ctx, s, "a", "smtp", loginToken("rt-new", "at-new-smtp", exp)); err != nil {
		t.Fatal(err)
	}
	want := map[Kind]string{KindRefresh: "rt-new", AccessKind("smtp"): "at-new-smtp", KindState: "relogin=false"}
	if diff := cmp.Diff(want, tokenKinds(t, s, "a")); diff != "" {
		t.Errorf("account a after ReplaceLogin (-want +got):\n%s", diff)
	}
	wantB := map[Kind]string{KindRefresh: "rt-b", AccessKind("graph"): "at-b", KindState: "relogin=false"}
	if diff := cmp.Diff(wantB, tokenKinds(t, s, "b")); diff != "" {
		t.Errorf("account b (-want +got):\n%s", diff)
	}
	if l, err := s.Acquire(ctx, "a", "refresher", time.Hour); err != nil {
		t.Errorf("Acquire after ReplaceLogin: %v, want its lease released", err)
	} else if err := s.Release(ctx, l); err != nil {
		t.Fatal(err)
	}

	// A login without a refresh token (or resource) leaves no stale refresh
	// token behind either; an unknown account is simply written.
	if err := ReplaceLogin(ctx, s, "a", "", loginToken("", "at-x", exp)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[Kind]string{KindState: "relogin=false"}, tokenKinds(t, s, "a")); diff != "" {
		t.Errorf("after a login with no refresh token (-want +got):\n%s", diff)
	}
	if err := ReplaceLogin(ctx, s, "new", "imap", loginToken("rt-n", "at-n", exp)); err != nil {
		t.Fatal(err)
	}
	want = map[Kind]string{KindRefresh: "rt-n", AccessKind("imap"): "at-n", KindState: "relogin=false"}
	if diff := cmp.Diff(want, tokenKinds(t, s, "new")); diff != "" {
		t.Errorf("new account (-want +got):\n%s", diff)
	}
}

// A record that no longer decrypts (tampered, copied) does not stop a new
// login, which is how the user repairs the account: it is replaced too.
func (ss storeSuite) testReplaceLoginUnreadable(t *testing.T) {
	s, _ := ss.open(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := SaveLogin(ctx, s, "a", "imap", loginToken("rt-old", "at-old", exp)); err != nil {
		t.Fatal(err)
	}
	b := s.(*store).b
	raw, _, err := b.get(ctx, "a", KindRefresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.put(ctx, nil, []Record{{Account: "a", Kind: AccessKind("graph"), Value: raw}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Records(ctx, "a"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Records with a moved value: got %v, want ErrDecrypt", err)
	}
	if err := ReplaceLogin(ctx, s, "a", "imap", loginToken("rt-new", "at-new", exp)); err != nil {
		t.Fatal(err)
	}
	want := map[Kind]string{KindRefresh: "rt-new", AccessKind("imap"): "at-new", KindState: "relogin=false"}
	if diff := cmp.Diff(want, tokenKinds(t, s, "a")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
