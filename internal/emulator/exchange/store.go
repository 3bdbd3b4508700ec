package exchange

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-message/mail"
)

// Folder is one well-known Exchange folder: its Graph well-known name and
// its IMAP name as Exchange Online lists it.
type Folder struct {
	WellKnown string // Graph: inbox, sentitems, …
	IMAP      string // IMAP: INBOX, Sent Items, …
}

// Folders are the well-known folders every emulated mailbox has.
var Folders = []Folder{
	{"inbox", "INBOX"},
	{"sentitems", "Sent Items"},
	{"drafts", "Drafts"},
	{"deleteditems", "Deleted Items"},
	{"junkemail", "Junk Email"},
	{"archive", "Archive"},
	{"outbox", "Outbox"},
}

func folderByName(name string) (Folder, bool) {
	for _, f := range Folders {
		if strings.EqualFold(f.WellKnown, name) || strings.EqualFold(f.IMAP, name) {
			return f, true
		}
	}
	return Folder{}, false
}

// Message is one stored message. Raw is the RFC 5322 text; the other
// fields are parsed from it when stored (Graph reads them).
type Message struct {
	ID     string // Graph id
	Folder string // well-known folder name
	// Raw is the message as delivered (RFC 5322), Received when it
	// arrived, Read its \Seen flag (Graph isRead).
	Raw      []byte
	Received time.Time
	Read     bool
	// Bcc is kept for the sender's Sent Items copy (Bcc is not in Raw).
	Bcc []Address

	// Subject to HasAttach are parsed from Raw once, for Graph's JSON and
	// IMAP's envelope.
	Subject   string
	From      Address
	To, Cc    []Address
	ReplyTo   []Address
	Date      time.Time
	MessageID string
	BodyType  string // "text" or "html"
	Body      string
	HasAttach bool
	imapUID   imap.UID
	seq       uint64 // arrival order, breaks ties of Received
}

// Address is a mail address with an optional display name.
type Address struct {
	// Name is the display name ("" when none).
	Name string `json:"name"`
	// Address is the addr-spec, user@domain.
	Address string `json:"address"`
}

// mailStore is the in-memory mail of every mailbox, shared by IMAP, POP3,
// SMTP and Graph. Each mailbox also owns an imapmemserver user that mirrors
// it for the IMAP server (go-imap's backend, not rewritten here); changes
// made over IMAP (expunge, move) are reconciled back on the next access.
type mailStore struct {
	mu    sync.Mutex
	boxes map[string]*storeBox
	seq   uint64
}

type storeBox struct {
	address string
	msgs    map[string][]*Message // folder → messages in arrival order
	imap    *imapmemserver.User
}

func newMailStore() *mailStore { return &mailStore{boxes: map[string]*storeBox{}} }

// box returns the mailbox for addr, creating it with the well-known
// folders on first use. Callers hold st.mu.
func (st *mailStore) boxLocked(addr string) *storeBox {
	addr = strings.ToLower(addr)
	b := st.boxes[addr]
	if b == nil {
		b = &storeBox{address: addr, msgs: map[string][]*Message{}, imap: imapmemserver.NewUser(addr, "")}
		for _, f := range Folders {
			if f.IMAP != "INBOX" {
				_ = b.imap.Create(f.IMAP, nil)
			} else {
				_ = b.imap.Create("INBOX", nil)
			}
		}
		st.boxes[addr] = b
	}
	return b
}

// imapUser returns the IMAP view of addr's mailbox.
func (st *mailStore) imapUser(addr string) *imapmemserver.User {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.boxLocked(addr).imap
}

// add stores raw in addr's folder and mirrors it into the IMAP view.
func (st *mailStore) add(addr, folder string, raw []byte, received time.Time, read bool, bcc []Address) (*Message, error) {
	m := parseMessage(raw)
	m.Raw, m.Received, m.Read, m.Bcc = raw, received.UTC(), read, bcc
	f, ok := folderByName(folder)
	if !ok {
		return nil, fmt.Errorf("unknown folder %q", folder)
	}
	m.Folder = f.WellKnown
	st.mu.Lock()
	defer st.mu.Unlock()
	st.seq++
	b := st.boxLocked(addr)
	m.ID, m.seq = messageID(b.address, st.seq), st.seq
	var flags []imap.Flag
	if read {
		flags = append(flags, imap.FlagSeen)
	}
	ad, err := b.imap.Append(f.IMAP, literal(raw), &imap.AppendOptions{Flags: flags, Time: received})
	if err != nil {
		return nil, fmt.Errorf("append to imap view: %w", err)
	}
	m.imapUID = ad.UID
	b.msgs[f.WellKnown] = append(b.msgs[f.WellKnown], m)
	return m, nil
}

// list returns copies of addr's messages of folder ("" = every folder),
// newest first, after reconciling deletions and \Seen changes made over
// IMAP.
func (st *mailStore) list(addr, folder string) []*Message {
	st.mu.Lock()
	defer st.mu.Unlock()
	b := st.boxLocked(addr)
	st.reconcileLocked(b)
	var out []*Message
	for name, msgs := range b.msgs {
		if folder == "" || name == folder {
			for _, m := range msgs {
				c := *m // callers read it without the lock
				out = append(out, &c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Received.Equal(out[j].Received) {
			return out[i].Received.After(out[j].Received)
		}
		return out[i].seq > out[j].seq
	})
	return out
}

// inbox returns addr's INBOX in arrival order (the POP3 maildrop).
func (st *mailStore) inbox(addr string) []*Message {
	st.mu.Lock()
	defer st.mu.Unlock()
	b := st.boxLocked(addr)
	st.reconcileLocked(b)
	out := make([]*Message, 0, len(b.msgs["inbox"]))
	for _, m := range b.msgs["inbox"] {
		c := *m
		out = append(out, &c)
	}
	return out
}

// remove deletes messages (POP3 DELE + QUIT) from the store and the IMAP view.
func (st *mailStore) remove(addr string, del []*Message) {
	if len(del) == 0 {
		return
	}
	st.mu.Lock()
	b := st.boxLocked(addr)
	byFolder := map[string]imap.UIDSet{}
	gone := map[string]bool{}
	for _, m := range del {
		gone[m.ID] = true
		set := byFolder[m.Folder]
		set.AddNum(m.imapUID)
		byFolder[m.Folder] = set
	}
	for f, msgs := range b.msgs {
		b.msgs[f] = slicesDeleteFunc(msgs, func(m *Message) bool { return gone[m.ID] })
	}
	u := b.imap
	st.mu.Unlock()
	for folder, uids := range byFolder {
		f, _ := folderByName(folder)
		sess := imapmemserver.NewUserSession(u)
		if _, err := sess.Select(f.IMAP, nil); err != nil {
			continue
		}
		_ = sess.Store(nil, uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
		_ = sess.Expunge(nil, &uids)
		_ = sess.Close()
	}
}

// reconcileLocked drops messages that were expunged or moved away over
// IMAP, so POP3 and Graph see what IMAP clients did. (Messages appended or
// copied over IMAP are not mirrored back; see the package doc.) It runs
// under st.mu so that no delivery lands between the IMAP search and the
// pruning; the IMAP backend never calls back into the store, so the lock
// order st.mu → backend mailbox lock is safe.
func (st *mailStore) reconcileLocked(b *storeBox) {
	for _, f := range Folders {
		sess := imapmemserver.NewUserSession(b.imap)
		if _, err := sess.Select(f.IMAP, nil); err != nil {
			continue
		}
		all, err1 := searchUIDs(sess, &imap.SearchCriteria{})
		seen, err2 := searchUIDs(sess, &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}})
		_ = sess.Close()
		if err1 != nil || err2 != nil {
			continue
		}
		b.msgs[f.WellKnown] = slicesDeleteFunc(b.msgs[f.WellKnown], func(m *Message) bool { return !all[m.imapUID] })
		for _, m := range b.msgs[f.WellKnown] {
			m.Read = seen[m.imapUID] // \Seen set or cleared over IMAP is Graph's isRead
		}
	}
}

// searchUIDs returns the UIDs of the selected IMAP mailbox matching c.
func searchUIDs(sess *imapmemserver.UserSession, c *imap.SearchCriteria) (map[imap.UID]bool, error) {
	data, err := sess.Search(imapserver.NumKindUID, c, &imap.SearchOptions{ReturnAll: true})
	if err != nil {
		return nil, err
	}
	set := map[imap.UID]bool{}
	if uids, ok := data.All.(imap.UIDSet); ok {
		for _, r := range uids {
			for u := r.Start; u <= r.Stop && u != 0; u++ {
				set[u] = true
			}
		}
	}
	return set, nil
}

func slicesDeleteFunc(in []*Message, del func(*Message) bool) []*Message {
	out := in[:0:0]
	for _, m := range in {
		if !del(m) {
			out = append(out, m)
		}
	}
	return out
}

// literal adapts a byte slice to imap.LiteralReader.
type byteLiteral struct {
	*bytes.Reader
	n int64
}

func (l byteLiteral) Size() int64 { return l.n }

func literal(b []byte) imap.LiteralReader {
	return byteLiteral{Reader: bytes.NewReader(b), n: int64(len(b))}
}

// messageID builds a Graph-looking opaque message id ("AAMk…").
func messageID(addr string, seq uint64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", addr, seq))
	return "AAMkAG" + base64.RawURLEncoding.EncodeToString(sum[:]) + fmt.Sprintf("AAA%d", seq)
}

// derivedID builds a stable GUID-shaped id from parts.
func derivedID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := fmt.Sprintf("%x", sum[:16])
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// parseMessage extracts what Graph shows from a raw message. A message
// that does not parse still gets stored (Exchange stores anything), with
// empty fields.
func parseMessage(raw []byte) *Message {
	m := &Message{BodyType: "text"}
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil && mr == nil {
		return m
	}
	h := mr.Header
	m.Subject, _ = h.Subject()
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		m.From = Address{Name: from[0].Name, Address: from[0].Address}
	}
	m.To = addrList(h, "To")
	m.Cc = addrList(h, "Cc")
	m.ReplyTo = addrList(h, "Reply-To")
	m.Date, _ = h.Date()
	m.MessageID = h.Get("Message-Id")
	gotBody := false
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			if gotBody || (ct != "text/plain" && ct != "text/html" && ct != "") {
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(p.Body, 4<<20))
			m.Body = string(b)
			if ct == "text/html" {
				m.BodyType = "html"
			}
			gotBody = true
		case *mail.AttachmentHeader:
			m.HasAttach = true
		}
	}
	return m
}

func addrList(h mail.Header, key string) []Address {
	l, err := h.AddressList(key)
	if err != nil {
		return nil
	}
	out := make([]Address, 0, len(l))
	for _, a := range l {
		out = append(out, Address{Name: a.Name, Address: a.Address})
	}
	return out
}

// mirrorAppend records a message an IMAP client APPENDed (already in the
// IMAP view under uid) so POP3 and Graph see it too. Folders other than
// the well-known ones exist over IMAP only.
func (st *mailStore) mirrorAppend(addr, imapFolder string, raw []byte, uid imap.UID, received time.Time, seen bool) {
	f, ok := folderByName(imapFolder)
	if !ok {
		return
	}
	m := parseMessage(raw)
	m.Raw, m.Received, m.Read, m.Folder, m.imapUID = raw, received.UTC(), seen, f.WellKnown, uid
	st.mu.Lock()
	defer st.mu.Unlock()
	st.seq++
	b := st.boxLocked(addr)
	m.ID, m.seq = messageID(b.address, st.seq), st.seq
	b.msgs[f.WellKnown] = append(b.msgs[f.WellKnown], m)
}

// mirrorCopy records IMAP COPY/MOVE results: each source UID of srcFolder
// got dstUIDs[i] in dstFolder.
func (st *mailStore) mirrorCopy(addr, srcFolder, dstFolder string, srcUIDs, dstUIDs []imap.UID) {
	sf, ok1 := folderByName(srcFolder)
	df, ok2 := folderByName(dstFolder)
	if !ok1 || !ok2 || len(srcUIDs) != len(dstUIDs) {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	b := st.boxLocked(addr)
	byUID := map[imap.UID]*Message{}
	for _, m := range b.msgs[sf.WellKnown] {
		byUID[m.imapUID] = m
	}
	for i, su := range srcUIDs {
		src := byUID[su]
		if src == nil {
			continue
		}
		c := *src
		st.seq++
		c.ID, c.seq, c.Folder, c.imapUID = messageID(b.address, st.seq), st.seq, df.WellKnown, dstUIDs[i]
		b.msgs[df.WellKnown] = append(b.msgs[df.WellKnown], &c)
	}
}

// knownUIDs returns the IMAP UIDs the store knows in an IMAP folder.
func (st *mailStore) knownUIDs(addr, imapFolder string) map[imap.UID]bool {
	out := map[imap.UID]bool{}
	f, ok := folderByName(imapFolder)
	if !ok {
		return out
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, m := range st.boxLocked(addr).msgs[f.WellKnown] {
		out[m.imapUID] = true
	}
	return out
}

// uidList flattens a UID set in ascending order.
func uidList(set imap.UIDSet) []imap.UID {
	var out []imap.UID
	for _, r := range set {
		for u := r.Start; u <= r.Stop && u != 0; u++ {
			out = append(out, u)
		}
	}
	return out
}
