package exchange

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Graph error texts (reference §5.5; [obs] wordings).
const (
	msgTokenEmpty     = "Access token is empty."
	msgTokenGarbled   = "CompactToken parsing failed with error code: 80049217"
	msgTokenExpired   = "Lifetime validation failed, the token is expired."
	msgTokenRevoked   = "Access token validation failure. The token was revoked."
	msgTokenAudience  = "Access token validation failure. Invalid audience."
	msgAccessDenied   = "Access is denied. Check credentials and try again."
	msgMeAppOnly      = "/me request is only valid with delegated authentication flow."
	msgNoRESTMailbox  = "The mailbox is either inactive, soft-deleted, or is hosted on-premise."
	msgThrottled      = "Application is over its MailboxConcurrency limit."
	maxGraphBody      = 35 << 20
	defaultGraphPage  = 10
	maxGraphPage      = 1000
	graphDateTimeForm = "2006-01-02T15:04:05Z"
)

// GraphHandler returns the Graph mail API handler (paths start with
// /v1.0/), for serving under httptest or another listener.
// Paths under /_exchange/ are the admin API (admin.go).
func (s *Server) GraphHandler() http.Handler {
	admin := s.adminHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_exchange/") {
			admin.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, uploadPathPrefix) {
			s.serveUpload(w, r)
			return
		}
		s.serveGraph(w, r)
	})
}

// graphReq is one Graph request after authentication.
type graphReq struct {
	w         http.ResponseWriter
	r         *http.Request
	at        emulator.AccessToken
	requestID string
	clientID  string
	base      string    // scheme://host/v1.0 as the client addressed it
	now       time.Time // the emulator's clock
}

func (g *graphReq) fail(status int, code, msg string) {
	h := g.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("request-id", g.requestID)
	h.Set("client-request-id", g.clientID)
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="`+emulator.GraphAppID+`"`)
	}
	g.w.WriteHeader(status)
	_ = json.NewEncoder(g.w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"date": g.now.UTC().Format(graphDateTimeForm),
			"request-id": g.requestID, "client-request-id": g.clientID},
	}})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := fmt.Sprintf("%x", b)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// serveGraph routes /v1.0/… requests. Graph path segments are
// case-insensitive, so the routing is done here rather than by ServeMux.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http" // GraphHandler under a plain httptest server
	}
	g := &graphReq{w: w, r: r, requestID: newRequestID(), base: scheme + "://" + r.Host + "/v1.0", now: s.em.Now()}
	g.clientID = r.Header.Get("client-request-id")
	if g.clientID == "" {
		g.clientID = g.requestID
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("graph handler panic", "path", r.URL.Path, "panic", fmt.Sprint(p))
			g.fail(500, "generalException", "An internal server error occurred.")
		}
	}()
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 2 || segs[0] != "v1.0" {
		g.fail(http.StatusBadRequest, "BadRequest", "Invalid version.")
		return
	}
	segs = segs[1:]
	// Target: me | users/{id}.
	var target string
	me := false
	switch {
	case strings.EqualFold(segs[0], "me"):
		me, segs = true, segs[1:]
	case strings.EqualFold(segs[0], "users") && len(segs) >= 2:
		target, segs = segs[1], segs[2:]
	default:
		g.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[0]))
		return
	}
	var op, folder, msgID string
	switch {
	case len(segs) == 1 && strings.EqualFold(segs[0], "sendMail"):
		op = "send"
	case len(segs) == 1 && strings.EqualFold(segs[0], "messages") && r.Method == http.MethodPost:
		op = "draft"
	case len(segs) == 1 && strings.EqualFold(segs[0], "messages"):
		op = "list"
	case len(segs) == 4 && strings.EqualFold(segs[0], "messages") && strings.EqualFold(segs[2], "attachments") &&
		strings.EqualFold(segs[3], "createUploadSession"):
		op, msgID = "session", segs[1]
	case len(segs) == 3 && strings.EqualFold(segs[0], "messages") && strings.EqualFold(segs[2], "send"):
		op, msgID = "senddraft", segs[1]
	case len(segs) == 3 && strings.EqualFold(segs[0], "mailFolders") && strings.EqualFold(segs[2], "messages"):
		op, folder = "list", segs[1]
	default:
		rest := "(none)"
		if len(segs) > 0 {
			rest = segs[0]
		}
		g.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", rest))
		return
	}
	if (op != "list" && r.Method != http.MethodPost) || (op == "list" && r.Method != http.MethodGet) {
		g.fail(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	if !s.graphAuth(g) {
		return
	}
	if st := s.em.Settings(); st.GraphThrottle {
		w.Header().Set("Retry-After", strconv.Itoa(st.GraphRetryAfter))
		g.fail(http.StatusTooManyRequests, "ApplicationThrottled", msgThrottled)
		return
	}
	if me {
		if g.at.AppOnly() {
			g.fail(http.StatusBadRequest, "BadRequest", msgMeAppOnly)
			return
		}
		target = g.at.UPN
	}
	mb, ok := s.graphMailbox(g, target)
	if !ok {
		return
	}
	switch op {
	case "send":
		s.graphSend(g, mb)
		return
	case "draft":
		s.graphCreateDraft(g, mb)
		return
	case "session":
		s.graphCreateUploadSession(g, mb, msgID)
		return
	case "senddraft":
		s.graphSendDraft(g, mb, msgID)
		return
	}
	s.graphList(g, mb, me, target, folder)
}

// graphAuth checks the bearer token like Graph: present, issued here,
// active, for the Graph resource.
func (s *Server) graphAuth(g *graphReq) bool {
	authz := g.r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(authz, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "bearer") || tok == "" {
		s.log.Warn("graph request refused", "path", g.r.URL.Path, "reason", "no bearer token")
		g.fail(http.StatusUnauthorized, "InvalidAuthenticationToken", msgTokenEmpty)
		return false
	}
	at, ok := s.em.Lookup(tok)
	var msg, reason string
	switch {
	case !ok:
		msg, reason = msgTokenGarbled, "token was not issued by this emulator"
	case at.Revoked:
		msg, reason = msgTokenRevoked, "token is revoked"
	case !at.ActiveAt(s.em.Now()):
		msg, reason = msgTokenExpired, "token expired"
	case !strings.EqualFold(at.Resource, emulator.GraphAppID):
		msg, reason = msgTokenAudience, "token is for "+at.Audience+", not Microsoft Graph"
	}
	if msg != "" {
		s.log.Warn("graph request refused", "path", g.r.URL.Path, "reason", reason)
		g.fail(http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		return false
	}
	g.at = at
	return true
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// graphMailbox resolves /users/{id|upn} (or /me's UPN) to a mailbox the
// token may use, writing the Graph error when it cannot.
func (s *Server) graphMailbox(g *graphReq, id string) (mailboxInfo, bool) {
	id, _ = url.PathUnescape(id)
	if guidRE.MatchString(id) {
		if mi, ok := s.em.MailboxByID(id); ok {
			id = mi.UPN
		}
	}
	if mi, ok := s.em.Mailbox(id); ok && !mi.HasMailbox {
		s.log.Warn("graph request refused", "user", id, "reason", "user has no Exchange Online mailbox")
		g.fail(http.StatusNotFound, "MailboxNotEnabledForRESTAPI", msgNoRESTMailbox)
		return mailboxInfo{}, false
	}
	mb, ok := s.mailbox(id)
	if !ok || !strings.EqualFold(mb.TenantID, g.at.TenantID) {
		s.log.Warn("graph request refused", "user", id, "reason", "no such mailbox in the token's tenant")
		g.fail(http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", id))
		return mailboxInfo{}, false
	}
	return mb, true
}

// graphAllowed checks the permission for op on mb: app roles for app
// tokens; delegated scopes for the user's own mailbox, *.Shared scopes plus
// FullAccess (or SendAs for sending) for another mailbox.
func (s *Server) graphAllowed(g *graphReq, mb mailboxInfo, send bool) bool {
	at := g.at
	var ok bool
	var why string
	switch {
	case at.AppOnly() && send:
		ok, why = at.HasRole("Mail.Send"), "app token lacks role Mail.Send"
	case at.AppOnly():
		ok = at.HasRole("Mail.Read") || at.HasRole("Mail.ReadWrite") || at.HasRole("Mail.ReadBasic.All") || at.HasRole("Mail.ReadBasic")
		why = "app token lacks a Mail.Read* role"
	case strings.EqualFold(at.UPN, mb.Address) && send:
		ok, why = at.HasScope("Mail.Send"), "user token lacks scope Mail.Send"
	case strings.EqualFold(at.UPN, mb.Address):
		ok = at.HasScope("Mail.Read") || at.HasScope("Mail.ReadWrite") || at.HasScope("Mail.ReadBasic")
		why = "user token lacks a Mail.Read* scope"
	case send:
		ok = at.HasScope("Mail.Send.Shared") && mb.canSendAs(at.UPN)
		why = "sending as another mailbox needs Mail.Send.Shared and SendAs"
	default:
		ok = (at.HasScope("Mail.Read.Shared") || at.HasScope("Mail.ReadWrite.Shared")) && mb.userFullAccess(at.UPN)
		why = "reading another mailbox needs Mail.Read.Shared and FullAccess"
	}
	if !ok {
		s.log.Warn("graph request refused", "path", g.r.URL.Path, "mailbox", mb.Address, "reason", why)
		g.fail(http.StatusForbidden, "ErrorAccessDenied", msgAccessDenied)
	}
	return ok
}

// Graph JSON shapes of sendMail (reference §5.5).
type graphRecipient struct {
	EmailAddress Address `json:"emailAddress"`
}

type graphAttachment struct {
	ODataType    string `json:"@odata.type"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType"`
	ContentBytes string `json:"contentBytes"`
}

type graphMessage struct {
	Subject string `json:"subject"`
	Body    *struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	ToRecipients           []graphRecipient  `json:"toRecipients"`
	CcRecipients           []graphRecipient  `json:"ccRecipients"`
	BccRecipients          []graphRecipient  `json:"bccRecipients"`
	ReplyTo                []graphRecipient  `json:"replyTo"`
	From                   *graphRecipient   `json:"from"`
	Attachments            []graphAttachment `json:"attachments"`
	InternetMessageHeaders []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"internetMessageHeaders"`
}

type sendMailBody struct {
	Message         *graphMessage `json:"message"`
	SaveToSentItems *bool         `json:"saveToSentItems"`
}

func (s *Server) graphSend(g *graphReq, mb mailboxInfo) {
	if !s.graphAllowed(g, mb, true) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(g.r.Body, maxGraphBody+1))
	if err != nil || len(body) > maxGraphBody {
		g.fail(http.StatusRequestEntityTooLarge, "ErrorRequestEntityTooLarge", "The request is too large.")
		return
	}
	ct := strings.ToLower(g.r.Header.Get("Content-Type"))
	var raw []byte
	var rcpts []string
	var bcc []Address
	save := true
	if strings.HasPrefix(ct, "text/plain") {
		raw, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(body)))
		if err != nil {
			g.fail(http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
			return
		}
		m := parseMessage(raw)
		for _, a := range append(append(m.To, m.Cc...), addrList(mustHeader(raw), "Bcc")...) {
			rcpts = append(rcpts, a.Address)
		}
	} else {
		var req sendMailBody
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&req); err != nil || req.Message == nil {
			g.fail(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
			return
		}
		if req.SaveToSentItems != nil {
			save = *req.SaveToSentItems
		}
		var ferr *graphError
		raw, rcpts, bcc, ferr = s.buildMIME(g, mb, req.Message, nil)
		if ferr != nil {
			g.fail(ferr.status, ferr.code, ferr.msg)
			return
		}
	}
	if len(rcpts) == 0 {
		g.fail(http.StatusBadRequest, "ErrorInvalidRecipients",
			"At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
		return
	}
	s.log.Info("graph sendMail", "mailbox", mb.Address, "recipients", len(rcpts), "save_to_sent_items", save)
	s.deliver(mb.Address, rcpts, bcc, raw, save)
	g.w.Header().Set("request-id", g.requestID)
	g.w.Header().Set("client-request-id", g.clientID)
	g.w.WriteHeader(http.StatusAccepted)
}

func mustHeader(raw []byte) mail.Header {
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil && r == nil {
		return mail.Header{}
	}
	return r.Header
}

type graphError struct {
	status    int
	code, msg string
}

// buildMIME turns a Graph Message into the MIME message Exchange would
// send, returning the envelope recipients and the Bcc list. extra are
// attachments added to a draft by upload sessions, already decoded.
func (s *Server) buildMIME(g *graphReq, mb mailboxInfo, m *graphMessage, extra []draftFile) ([]byte, []string, []Address, *graphError) {
	from := Address{Name: mb.displayName(), Address: mb.Address}
	if m.From != nil && m.From.EmailAddress.Address != "" && !strings.EqualFold(m.From.EmailAddress.Address, mb.Address) {
		fa := m.From.EmailAddress.Address
		allowed := !g.at.AppOnly() && s.maySendAs(Grant{Mailbox: mb.Address, Identity: g.at.UPN}, fa)
		if !allowed {
			s.log.Warn("graph sendMail refused", "mailbox", mb.Address, "from", fa, "reason", "no SendAs permission")
			return nil, nil, nil, &graphError{http.StatusForbidden, "ErrorSendAsDenied",
				"The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."}
		}
		from = m.From.EmailAddress
	}
	var rcpts []string
	conv := func(l []graphRecipient) ([]*mail.Address, *graphError) {
		var out []*mail.Address
		for _, r := range l {
			if !strings.Contains(r.EmailAddress.Address, "@") {
				return nil, &graphError{http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient isn't valid."}
			}
			rcpts = append(rcpts, r.EmailAddress.Address)
			out = append(out, &mail.Address{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address})
		}
		return out, nil
	}
	to, e1 := conv(m.ToRecipients)
	cc, e2 := conv(m.CcRecipients)
	bccAddrs, e3 := conv(m.BccRecipients)
	replyTo, e4 := conv(m.ReplyTo)
	for _, e := range []*graphError{e1, e2, e3, e4} {
		if e != nil {
			return nil, nil, nil, e
		}
	}
	rcpts = rcpts[:len(rcpts)-len(replyTo)]
	var bcc []Address
	for _, a := range bccAddrs {
		bcc = append(bcc, Address{Name: a.Name, Address: a.Address})
	}
	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Name: from.Name, Address: from.Address}})
	if len(to) > 0 {
		h.SetAddressList("To", to)
	}
	if len(cc) > 0 {
		h.SetAddressList("Cc", cc)
	}
	if len(replyTo) > 0 {
		h.SetAddressList("Reply-To", replyTo)
	}
	h.SetSubject(m.Subject)
	h.SetDate(s.em.Now())
	h.Set("Message-ID", "<"+derivedID("graph", newRequestID())+"@"+s.hostname+".prod.outlook.com>")
	for _, ih := range m.InternetMessageHeaders {
		if !strings.HasPrefix(strings.ToLower(ih.Name), "x-") {
			return nil, nil, nil, &graphError{http.StatusBadRequest, "InvalidInternetMessageHeader",
				"The internet message header name '" + ih.Name + "' should start with 'x-' or 'X-'."}
		}
		h.Set(ih.Name, ih.Value)
	}
	bodyType, content := "text/plain", ""
	if m.Body != nil {
		content = m.Body.Content
		if strings.EqualFold(m.Body.ContentType, "html") {
			bodyType = "text/html"
		}
	}
	var buf bytes.Buffer
	writeInline := func(w *mail.Writer) error {
		var ih mail.InlineHeader
		ih.SetContentType(bodyType, map[string]string{"charset": "utf-8"})
		iw, err := w.CreateSingleInline(ih)
		if err != nil {
			return err
		}
		_, _ = io.WriteString(iw, content)
		return iw.Close()
	}
	if len(m.Attachments)+len(extra) == 0 {
		var ih mail.InlineHeader
		ih.Header = h.Header
		ih.SetContentType(bodyType, map[string]string{"charset": "utf-8"})
		w, err := mail.CreateSingleInlineWriter(&buf, mail.Header{Header: ih.Header})
		if err != nil {
			return nil, nil, nil, &graphError{500, "generalException", "could not build the message"}
		}
		_, _ = io.WriteString(w, content)
		_ = w.Close()
	} else {
		w, err := mail.CreateWriter(&buf, h)
		if err != nil {
			return nil, nil, nil, &graphError{500, "generalException", "could not build the message"}
		}
		if err := writeInline(w); err != nil {
			return nil, nil, nil, &graphError{500, "generalException", "could not build the message"}
		}
		for _, a := range m.Attachments {
			if a.ODataType != "" && a.ODataType != "#microsoft.graph.fileAttachment" {
				return nil, nil, nil, &graphError{http.StatusBadRequest, "ErrorInvalidRequest",
					"Only #microsoft.graph.fileAttachment is supported by the emulator."}
			}
			data, err := base64.StdEncoding.DecodeString(a.ContentBytes)
			if err != nil {
				return nil, nil, nil, &graphError{http.StatusBadRequest, "ErrorInvalidRequest",
					"The value of contentBytes is not a valid base64 string."}
			}
			var ah mail.AttachmentHeader
			ct := a.ContentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			ah.SetContentType(ct, nil)
			ah.SetFilename(a.Name)
			aw, err := w.CreateAttachment(ah)
			if err != nil {
				return nil, nil, nil, &graphError{500, "generalException", "could not build the message"}
			}
			_, _ = aw.Write(data)
			_ = aw.Close()
		}
		for _, f := range extra {
			var ah mail.AttachmentHeader
			ah.SetContentType(f.contentType, nil)
			ah.SetFilename(f.name)
			aw, err := w.CreateAttachment(ah)
			if err != nil {
				return nil, nil, nil, &graphError{500, "generalException", "could not build the message"}
			}
			_, _ = aw.Write(f.data)
			_ = aw.Close()
		}
		_ = w.Close()
	}
	return buf.Bytes(), rcpts, bcc, nil
}

// messageProps are the message properties the emulator returns (and
// accepts in $select).
var messageProps = []string{"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
	"receivedDateTime", "sentDateTime", "hasAttachments", "internetMessageId", "subject", "bodyPreview",
	"importance", "parentFolderId", "conversationId", "isDeliveryReceiptRequested", "isReadReceiptRequested",
	"isRead", "isDraft", "webLink", "inferenceClassification", "body", "sender", "from", "toRecipients",
	"ccRecipients", "bccRecipients", "replyTo", "flag"}

func (s *Server) graphList(g *graphReq, mb mailboxInfo, me bool, target, folderArg string) {
	if !s.graphAllowed(g, mb, false) {
		return
	}
	folder := ""
	if folderArg != "" {
		f, ok := folderByName(folderArg)
		if !ok || !strings.EqualFold(f.WellKnown, folderArg) {
			g.fail(http.StatusBadRequest, "ErrorInvalidIdMalformed", "Id is malformed.")
			return
		}
		folder = f.WellKnown
	}
	q := g.r.URL.Query()
	for k, v := range q {
		switch k {
		case "$top", "$skip", "$select":
		case "$orderby":
			// Only the default order is emulated.
			if len(v) == 1 && strings.EqualFold(strings.Join(strings.Fields(v[0]), " "), "receivedDateTime desc") {
				continue
			}
			fallthrough
		default:
			if strings.HasPrefix(k, "$") {
				g.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Query option '%s' is not supported by the emulator.", k))
				return
			}
		}
	}
	top := defaultGraphPage
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxGraphPage {
			g.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for $top. $top must be between 1 and %d.", v, maxGraphPage))
			return
		}
		top = n
	}
	skip := 0
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			g.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for $skip.", v))
			return
		}
		skip = n
	}
	var sel []string
	if v := q.Get("$select"); v != "" {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			canon := ""
			for _, mp := range messageProps {
				if strings.EqualFold(mp, p) {
					canon = mp
				}
			}
			if canon == "" {
				g.fail(http.StatusBadRequest, "RequestBroker--ParseUri",
					fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.message'.", p))
				return
			}
			sel = append(sel, canon)
		}
	}
	textBody := strings.Contains(strings.ReplaceAll(g.r.Header.Get("Prefer"), " ", ""), `outlook.body-content-type="text"`)
	msgs := s.store.list(mb.Address, folder)
	page := []*Message{}
	if skip < len(msgs) {
		page = msgs[skip:min(len(msgs), skip+top)]
	}
	userSeg := mb.ObjectID
	if !me && target != "" {
		userSeg, _ = url.PathUnescape(target)
	}
	ctx := g.base + "/$metadata#users('" + url.PathEscape(userSeg) + "')"
	if folder != "" {
		ctx += "/mailFolders('" + folder + "')"
	}
	ctx += "/messages"
	if len(sel) > 0 {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	value := make([]map[string]any, 0, len(page))
	for _, m := range page {
		value = append(value, s.messageJSON(mb, m, sel, textBody))
	}
	out := map[string]any{"@odata.context": ctx, "value": value}
	if skip+top < len(msgs) {
		nq := url.Values{}
		nq.Set("$top", strconv.Itoa(top))
		nq.Set("$skip", strconv.Itoa(skip+top))
		if v := q.Get("$select"); v != "" {
			nq.Set("$select", v)
		}
		out["@odata.nextLink"] = g.base + strings.TrimPrefix(g.r.URL.Path, "/v1.0") + "?" + nq.Encode()
	}
	h := g.w.Header()
	h.Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	h.Set("request-id", g.requestID)
	h.Set("client-request-id", g.clientID)
	if textBody {
		h.Set("Preference-Applied", `outlook.body-content-type="text"`)
	}
	_ = json.NewEncoder(g.w).Encode(out)
}

func recipients(l []Address) []map[string]any {
	out := make([]map[string]any, 0, len(l))
	for _, a := range l {
		out = append(out, map[string]any{"emailAddress": map[string]string{"name": nameOr(a), "address": a.Address}})
	}
	return out
}

func nameOr(a Address) string {
	if a.Name != "" {
		return a.Name
	}
	return a.Address
}

// messageJSON renders one message as Graph does; sel limits the
// properties (id and @odata.etag always come).
func (s *Server) messageJSON(mb mailboxInfo, m *Message, sel []string, textBody bool) map[string]any {
	sent := m.Date
	if sent.IsZero() {
		sent = m.Received
	}
	bodyType, content := m.BodyType, m.Body
	switch {
	case textBody && bodyType == "html":
		bodyType, content = "text", htmlToText(content)
	case !textBody && bodyType == "text":
		bodyType, content = "html", "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div>"+
			strings.ReplaceAll(html.EscapeString(content), "\n", "<br>")+"</div></body></html>"
	}
	preview := strings.Join(strings.Fields(htmlToText(m.Body)), " ")
	if r := []rune(preview); len(r) > 255 {
		preview = string(r[:255])
	}
	changeKey := "CQAAABYAAAA" + base64.RawStdEncoding.EncodeToString([]byte(m.ID[len(m.ID)-8:]))
	all := map[string]any{
		"id":                         m.ID,
		"createdDateTime":            m.Received.Format(graphDateTimeForm),
		"lastModifiedDateTime":       m.Received.Format(graphDateTimeForm),
		"changeKey":                  changeKey,
		"categories":                 []string{},
		"receivedDateTime":           m.Received.Format(graphDateTimeForm),
		"sentDateTime":               sent.UTC().Format(graphDateTimeForm),
		"hasAttachments":             m.HasAttach,
		"internetMessageId":          m.MessageID,
		"subject":                    m.Subject,
		"bodyPreview":                preview,
		"importance":                 "normal",
		"parentFolderId":             "AQMkA" + base64.RawURLEncoding.EncodeToString([]byte(mb.Address+"/"+m.Folder)),
		"conversationId":             "AAQkA" + base64.RawURLEncoding.EncodeToString([]byte(m.Subject)),
		"isDeliveryReceiptRequested": false,
		"isReadReceiptRequested":     false,
		"isRead":                     m.Read,
		"isDraft":                    m.Folder == "drafts",
		"webLink":                    "https://outlook.office365.com/owa/?ItemID=" + url.QueryEscape(m.ID) + "&exvsurl=1&viewmodel=ReadMessageItem",
		"inferenceClassification":    "focused",
		"body":                       map[string]string{"contentType": bodyType, "content": content},
		"sender":                     map[string]any{"emailAddress": map[string]string{"name": nameOr(m.From), "address": m.From.Address}},
		"from":                       map[string]any{"emailAddress": map[string]string{"name": nameOr(m.From), "address": m.From.Address}},
		"toRecipients":               recipients(m.To),
		"ccRecipients":               recipients(m.Cc),
		"bccRecipients":              recipients(m.Bcc),
		"replyTo":                    recipients(m.ReplyTo),
		"flag":                       map[string]string{"flagStatus": "notFlagged"},
	}
	out := map[string]any{"@odata.etag": `W/"` + changeKey + `"`}
	if len(sel) == 0 {
		for k, v := range all {
			out[k] = v
		}
		return out
	}
	out["id"] = m.ID
	for _, k := range sel {
		out[k] = all[k]
	}
	return out
}

var tagRE = regexp.MustCompile(`(?s)<[^>]*>`)

// htmlToText is a rough HTML-to-text conversion for bodyPreview and the
// Prefer: outlook.body-content-type="text" header.
func htmlToText(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	s = strings.NewReplacer("<br>", "\n", "<br/>", "\n", "</p>", "\n", "</div>", "\n").Replace(s)
	return html.UnescapeString(strings.TrimSpace(tagRE.ReplaceAllString(s, "")))
}
