package exchange

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Graph's large-attachment protocol (reference §5.5; Graph docs
// attachment-createuploadsession): POST {user}/messages makes a draft,
// POST …/messages/{id}/attachments/createUploadSession hands out an upload
// URL on the Outlook REST host (here: this listener, under
// uploadPathPrefix) that takes PUTs of byte ranges with no Authorization
// header (the URL's authtoken is the credential), and POST
// …/messages/{id}/send sends the draft and moves it to Sent Items.
const (
	uploadPathPrefix = "/api/v2.0/AttachmentSessions/"
	// maxUploadAttachment is Graph's 150 MB limit per attachment.
	maxUploadAttachment = 150 << 20
	// maxUploadChunk is Graph's 60 MiB limit per PUT.
	maxUploadChunk = 60 << 20
	// uploadChunkUnit: every chunk but the last is a multiple of 320 KiB.
	uploadChunkUnit = 320 << 10
	// maxUploadBuffered caps the bytes all drafts and sessions may hold
	// at once, so tests cannot run the emulator out of memory; Exchange's
	// own limit is the mailbox quota.
	maxUploadBuffered = 300 << 20
	// uploadSessionLife is how long an upload URL works.
	uploadSessionLife = 2 * time.Hour
	// maxDraftBody caps a draft's JSON (Graph's 4 MB request limit, with
	// the slack sendMail allows).
	maxDraftBody = 5 << 20
)

// draftFile is an attachment uploaded into a draft.
type draftFile struct {
	name, contentType string
	data              []byte
}

// graphDraft is a draft created over Graph, waiting for its send.
type graphDraft struct {
	mailbox string        // owner's address
	msg     *graphMessage // as posted (small attachments inline)
	files   []draftFile   // uploaded attachments
	stored  *Message      // the copy in the mailbox's Drafts
}

// attachSession is one upload session.
type attachSession struct {
	id, authToken string
	mailbox       string
	draftID       string
	name, ctype   string
	size          int
	data          []byte
	expires       time.Time
}

// uploadState holds drafts and sessions; buffered counts the bytes they
// reserve (each session its announced size) against maxUploadBuffered.
type uploadState struct {
	mu       sync.Mutex
	drafts   map[string]*graphDraft
	sessions map[string]*attachSession
	buffered int
}

// mayWrite checks Mail.ReadWrite on mb, which drafts and upload sessions
// need (Mail.Send alone cannot create a draft).
func (s *Server) graphMayWrite(g *graphReq, mb mailboxInfo) bool {
	at := g.at
	var ok bool
	switch {
	case at.AppOnly():
		ok = at.HasRole("Mail.ReadWrite")
	case strings.EqualFold(at.UPN, mb.Address):
		ok = at.HasScope("Mail.ReadWrite")
	default:
		ok = at.HasScope("Mail.ReadWrite.Shared") && mb.userFullAccess(at.UPN)
	}
	if !ok {
		s.log.Warn("graph request refused", "path", g.r.URL.Path, "mailbox", mb.Address, "reason", "drafts need Mail.ReadWrite")
		g.fail(http.StatusForbidden, "ErrorAccessDenied", msgAccessDenied)
	}
	return ok
}

func (g *graphReq) writeJSON(status int, v any) {
	h := g.w.Header()
	h.Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	h.Set("request-id", g.requestID)
	h.Set("client-request-id", g.clientID)
	g.w.WriteHeader(status)
	_ = json.NewEncoder(g.w).Encode(v)
}

// graphCreateDraft is POST {user}/messages: the message goes to Drafts.
func (s *Server) graphCreateDraft(g *graphReq, mb mailboxInfo) {
	if !s.graphMayWrite(g, mb) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(g.r.Body, maxDraftBody+1))
	if err != nil || len(body) > maxDraftBody {
		g.fail(http.StatusRequestEntityTooLarge, "ErrorRequestEntityTooLarge", "The request is too large.")
		return
	}
	var m graphMessage
	if err := json.Unmarshal(body, &m); err != nil {
		g.fail(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return
	}
	raw, _, _, ferr := s.buildMIME(g, mb, &m, nil)
	if ferr != nil {
		g.fail(ferr.status, ferr.code, ferr.msg)
		return
	}
	stored, err := s.store.add(mb.Address, "drafts", raw, s.em.Now(), true, nil)
	if err != nil {
		g.fail(http.StatusInternalServerError, "generalException", "An internal server error occurred.")
		return
	}
	u := &s.uploads
	u.mu.Lock()
	if u.drafts == nil {
		u.drafts = map[string]*graphDraft{}
	}
	u.drafts[stored.ID] = &graphDraft{mailbox: mb.Address, msg: &m, stored: stored}
	u.mu.Unlock()
	s.log.Info("graph draft created", "mailbox", mb.Address, "attachments", len(m.Attachments))
	out := s.messageJSON(mb, stored, nil, false)
	g.writeJSON(http.StatusCreated, out)
}

// draftOf finds the draft id of mb, writing Graph's 404 when there is none.
func (s *Server) draftOf(g *graphReq, mb mailboxInfo, id string) (*graphDraft, bool) {
	s.uploads.mu.Lock()
	d, ok := s.uploads.drafts[id]
	s.uploads.mu.Unlock()
	if !ok || !strings.EqualFold(d.mailbox, mb.Address) {
		g.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		return nil, false
	}
	return d, true
}

// graphCreateUploadSession is POST …/messages/{id}/attachments/createUploadSession.
func (s *Server) graphCreateUploadSession(g *graphReq, mb mailboxInfo, id string) {
	if !s.graphMayWrite(g, mb) {
		return
	}
	if _, ok := s.draftOf(g, mb, id); !ok {
		return
	}
	var req struct {
		AttachmentItem *struct {
			AttachmentType string `json:"attachmentType"`
			Name           string `json:"name"`
			Size           int64  `json:"size"`
			ContentType    string `json:"contentType"`
		} `json:"AttachmentItem"`
	}
	if err := json.NewDecoder(io.LimitReader(g.r.Body, 64<<10)).Decode(&req); err != nil || req.AttachmentItem == nil {
		g.fail(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return
	}
	it := req.AttachmentItem
	switch {
	case !strings.EqualFold(it.AttachmentType, "file"):
		g.fail(http.StatusBadRequest, "ErrorInvalidRequest", "Only attachmentType 'file' is supported by the emulator.")
		return
	case it.Name == "":
		g.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The attachment name is required.")
		return
	case it.Size <= 0:
		g.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The attachment size must be greater than zero.")
		return
	case it.Size > maxUploadAttachment:
		g.fail(http.StatusRequestEntityTooLarge, "ErrorAttachmentSizeLimitExceeded",
			fmt.Sprintf("The attachment size %d exceeds the maximum of %d bytes.", it.Size, maxUploadAttachment))
		return
	}
	ctype := it.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	now := s.em.Now()
	sess := &attachSession{id: newRequestID(), authToken: randomToken(), mailbox: mb.Address, draftID: id,
		name: it.Name, ctype: ctype, size: int(it.Size), expires: now.Add(uploadSessionLife)}
	u := &s.uploads
	u.mu.Lock()
	for k, o := range u.sessions { // drop expired sessions and their reservation
		if now.After(o.expires) {
			u.buffered -= o.size
			delete(u.sessions, k)
		}
	}
	if u.buffered+sess.size > maxUploadBuffered {
		u.mu.Unlock()
		s.log.Warn("graph upload session refused", "mailbox", mb.Address, "reason", "emulator upload buffer full")
		g.fail(http.StatusInsufficientStorage, "ErrorQuotaExceeded", "The emulator holds too many uploaded bytes; send or discard drafts first.")
		return
	}
	if u.sessions == nil {
		u.sessions = map[string]*attachSession{}
	}
	u.sessions[sess.id] = sess
	u.buffered += sess.size
	u.mu.Unlock()
	scheme, _, _ := strings.Cut(g.base, "://")
	uploadURL := scheme + "://" + g.r.Host + uploadPathPrefix + sess.id + "?authtoken=" + sess.authToken
	s.log.Info("graph upload session created", "mailbox", mb.Address, "size", sess.size)
	g.writeJSON(http.StatusCreated, map[string]any{
		"@odata.context":     g.base + "/$metadata#microsoft.graph.uploadSession",
		"uploadUrl":          uploadURL,
		"expirationDateTime": sess.expires.UTC().Format(graphDateTimeForm),
		"nextExpectedRanges": []string{"0-"},
	})
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// serveUpload takes the PUTs of an upload session. Like Outlook's upload
// host it wants no Authorization header (a bearer token sent there would
// leak to another host) and checks Content-Range against what it holds.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	g := &graphReq{w: w, r: r, requestID: newRequestID(), now: s.em.Now()}
	g.clientID = g.requestID
	id := strings.TrimPrefix(r.URL.Path, uploadPathPrefix)
	u := &s.uploads
	u.mu.Lock()
	sess, ok := u.sessions[id]
	u.mu.Unlock()
	tok := r.URL.Query().Get("authtoken")
	switch {
	case !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.authToken)) != 1:
		g.fail(http.StatusNotFound, "ErrorItemNotFound", "The upload session was not found or has expired.")
		return
	case r.Header.Get("Authorization") != "":
		s.log.Warn("graph upload refused", "reason", "Authorization header sent to the upload URL")
		g.fail(http.StatusUnauthorized, "InvalidAuthenticationToken", "The upload URL is pre-authenticated: do not send an Authorization header.")
		return
	case g.now.After(sess.expires):
		g.fail(http.StatusNotFound, "ErrorItemNotFound", "The upload session was not found or has expired.")
		return
	case r.Method == http.MethodDelete:
		u.mu.Lock()
		if _, still := u.sessions[id]; still {
			delete(u.sessions, id)
			u.buffered -= sess.size
		}
		u.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case r.Method != http.MethodPut:
		g.fail(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	if st := s.em.Settings(); st.GraphThrottle {
		w.Header().Set("Retry-After", strconv.Itoa(st.GraphRetryAfter))
		g.fail(http.StatusTooManyRequests, "ApplicationThrottled", msgThrottled)
		return
	}
	first, last, total, ok := parseContentRange(r.Header.Get("Content-Range"))
	if !ok {
		g.fail(http.StatusBadRequest, "InvalidContentRange", "The Content-Range header is missing or malformed.")
		return
	}
	if total != sess.size {
		g.fail(http.StatusBadRequest, "InvalidContentRange", fmt.Sprintf("The Content-Range total %d does not match the attachment size %d.", total, sess.size))
		return
	}
	n := last - first + 1
	if n > maxUploadChunk {
		g.fail(http.StatusRequestEntityTooLarge, "ErrorRequestEntityTooLarge", "A chunk may be at most 60 MiB.")
		return
	}
	if last+1 < total && n%uploadChunkUnit != 0 {
		g.fail(http.StatusBadRequest, "InvalidContentRange", "Every chunk but the last must be a multiple of 320 KiB.")
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != int64(n) {
		g.fail(http.StatusBadRequest, "InvalidContentRange", "The Content-Length does not match the Content-Range.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(n)+1))
	if err != nil || len(body) != n {
		g.fail(http.StatusBadRequest, "InvalidContentRange", "The request body does not match the Content-Range.")
		return
	}
	u.mu.Lock()
	if first != len(sess.data) {
		next := len(sess.data)
		u.mu.Unlock()
		g.fail(http.StatusRequestedRangeNotSatisfiable, "InvalidContentRange",
			fmt.Sprintf("The range %d-%d does not start at the next expected byte %d.", first, last, next))
		return
	}
	if sess.data == nil {
		sess.data = make([]byte, 0, sess.size)
	}
	sess.data = append(sess.data, body...)
	if len(sess.data) < sess.size {
		next := len(sess.data)
		u.mu.Unlock()
		g.writeJSON(http.StatusOK, map[string]any{
			"@odata.context":     "https://outlook.office.com/api/v2.0/$metadata#Microsoft.OutlookServices.UploadSession",
			"expirationDateTime": sess.expires.UTC().Format(graphDateTimeForm),
			"nextExpectedRanges": []string{strconv.Itoa(next) + "-"},
		})
		return
	}
	delete(u.sessions, id)
	d, ok := u.drafts[sess.draftID]
	if ok {
		d.files = append(d.files, draftFile{name: sess.name, contentType: sess.ctype, data: sess.data})
	} else {
		u.buffered -= sess.size // the draft was sent meanwhile
	}
	u.mu.Unlock()
	if !ok {
		g.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	s.log.Info("graph attachment uploaded", "mailbox", sess.mailbox, "size", sess.size)
	w.Header().Set("Location", "https://outlook.office.com/api/v2.0/Users('"+sess.mailbox+"')/Messages('"+sess.draftID+"')/Attachments('"+sess.id+"')")
	w.Header().Set("request-id", g.requestID)
	w.WriteHeader(http.StatusCreated)
}

// parseContentRange reads "bytes first-last/total" with first <= last < total.
func parseContentRange(v string) (first, last, total int, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	a, b, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.Atoi(a)
	last, err2 = strconv.Atoi(b)
	total, err3 = strconv.Atoi(tot)
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || last >= total || total > maxUploadAttachment {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// graphSendDraft is POST …/messages/{id}/send: the draft, with its
// uploaded attachments, is delivered and moves from Drafts to Sent Items.
func (s *Server) graphSendDraft(g *graphReq, mb mailboxInfo, id string) {
	if !s.graphAllowed(g, mb, true) {
		return
	}
	d, ok := s.draftOf(g, mb, id)
	if !ok {
		return
	}
	u := &s.uploads
	u.mu.Lock()
	files := d.files
	u.mu.Unlock()
	raw, rcpts, bcc, ferr := s.buildMIME(g, mb, d.msg, files)
	if ferr != nil {
		g.fail(ferr.status, ferr.code, ferr.msg)
		return
	}
	if len(rcpts) == 0 {
		g.fail(http.StatusBadRequest, "ErrorInvalidRecipients",
			"At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
		return
	}
	u.mu.Lock()
	if cur, still := u.drafts[id]; !still || cur != d {
		u.mu.Unlock()
		g.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	delete(u.drafts, id)
	for _, f := range d.files {
		u.buffered -= len(f.data)
	}
	u.mu.Unlock()
	s.store.remove(mb.Address, []*Message{d.stored})
	s.log.Info("graph draft sent", "mailbox", mb.Address, "recipients", len(rcpts), "uploaded_attachments", len(files), "bytes", len(raw))
	s.deliver(mb.Address, rcpts, bcc, raw, true)
	g.w.Header().Set("request-id", g.requestID)
	g.w.Header().Set("client-request-id", g.clientID)
	g.w.WriteHeader(http.StatusAccepted)
}
