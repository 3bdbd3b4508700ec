package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Message is a mail to send with SendMail.
type Message struct {
	Subject string
	// Body is the text; BodyType is "Text" (default) or "HTML".
	Body        string
	BodyType    string
	To, Cc, Bcc []string
	Attachments []Attachment
	// SaveToSentItems defaults to true (Graph's default) when nil.
	SaveToSentItems *bool
}

// MaxSendMailRequest is the largest sendMail request Graph takes: 4 MB for
// the JSON, attachments included (base64 makes them a third larger).
// SendMail sends a larger message as a draft plus upload sessions.
const MaxSendMailRequest = 4 << 20

// ErrTooLarge is an attachment over MaxAttachment or a message whose body
// alone exceeds MaxSendMailRequest, refused before anything is sent.
var ErrTooLarge = errors.New("message too large for Graph")

// Attachment is a file attachment (#microsoft.graph.fileAttachment). Files
// of UploadThreshold or more are uploaded in chunks (upload session), up
// to MaxAttachment each.
type Attachment struct {
	Name        string
	ContentType string // e.g. from mailclient.DetectContentType
	Data        []byte
}

type emailAddress struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
}

type recipient struct {
	EmailAddress emailAddress `json:"emailAddress"`
}

type messageJSON struct {
	Subject string `json:"subject"`
	Body    struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	To          []recipient      `json:"toRecipients"`
	Cc          []recipient      `json:"ccRecipients,omitempty"`
	Bcc         []recipient      `json:"bccRecipients,omitempty"`
	Attachments []fileAttachment `json:"attachments,omitempty"`
}

type sendMailBody struct {
	Message         messageJSON `json:"message"`
	SaveToSentItems *bool       `json:"saveToSentItems,omitempty"`
}

type fileAttachment struct {
	ODataType    string `json:"@odata.type"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType,omitempty"`
	ContentBytes string `json:"contentBytes"`
}

func recipients(list []string) []recipient {
	out := make([]recipient, 0, len(list))
	for _, a := range list {
		out = append(out, recipient{EmailAddress: emailAddress{Address: a}})
	}
	return out
}

// SendMail sends msg from mb. A message that fits Graph's 4 MB request
// limit with no attachment of UploadThreshold or more goes in one POST
// {mailbox}/sendMail (JSON); a larger one goes the way Graph documents for
// large attachments: a draft, an upload session per large attachment, and
// POST …/messages/{id}/send (see sendLarge). Graph answers 202 Accepted:
// the message was accepted, not yet delivered.
func (c *Client) SendMail(ctx context.Context, mb Mailbox, msg *Message) error {
	if len(msg.To)+len(msg.Cc)+len(msg.Bcc) == 0 {
		return errors.New("graph sendMail: no recipients")
	}
	for _, a := range msg.Attachments {
		if len(a.Data) > MaxAttachment {
			return fmt.Errorf("graph sendMail: attachment %q is %.1f MB, over Graph's %d MB: %w", a.Name, float64(len(a.Data))/(1<<20), MaxAttachment>>20, ErrTooLarge)
		}
	}
	var b sendMailBody
	b.Message = newMessageJSON(msg, msg.Attachments)
	b.SaveToSentItems = msg.SaveToSentItems
	body, err := json.Marshal(&b)
	if err != nil {
		return fmt.Errorf("graph sendMail: %w", err)
	}
	large := false
	for _, a := range msg.Attachments {
		large = large || len(a.Data) >= UploadThreshold
	}
	if large || len(body) > MaxSendMailRequest {
		return c.sendLarge(ctx, mb, msg)
	}
	if _, err := c.do(ctx, http.MethodPost, c.base()+mb.path()+"/sendMail", body, http.StatusAccepted); err != nil {
		return fmt.Errorf("graph sendMail as %s: %w", mb, err)
	}
	return nil
}

// newMessageJSON is Graph's Message for msg with the attachments atts.
func newMessageJSON(msg *Message, atts []Attachment) messageJSON {
	var m messageJSON
	m.Subject = msg.Subject
	m.Body.ContentType = "Text"
	if strings.EqualFold(msg.BodyType, "html") {
		m.Body.ContentType = "HTML"
	}
	m.Body.Content = msg.Body
	m.To = recipients(msg.To)
	m.Cc = recipients(msg.Cc)
	m.Bcc = recipients(msg.Bcc)
	for _, a := range atts {
		m.Attachments = append(m.Attachments, fileAttachment{
			ODataType: "#microsoft.graph.fileAttachment", Name: a.Name, ContentType: a.ContentType,
			ContentBytes: base64.StdEncoding.EncodeToString(a.Data),
		})
	}
	return m
}

// ListOptions select what ListMessages returns.
type ListOptions struct {
	// Folder is a folder id or well-known name ("inbox", "sentitems");
	// empty lists all messages of the mailbox.
	Folder string
	// Top is the page size ($top, 1–1000; Graph's default is 10).
	Top int
	// Select trims the returned properties ($select), e.g. "subject",
	// "from", "receivedDateTime".
	Select []string
	// Limit stops after this many messages (0: follow every page).
	Limit int
}

// MessageInfo is what ListMessages returns of a message (the properties
// not $selected stay empty).
type MessageInfo struct {
	ID                string    `json:"id"`
	Subject           string    `json:"subject"`
	From              *Sender   `json:"from,omitempty"`
	ReceivedDateTime  time.Time `json:"receivedDateTime,omitzero"`
	IsRead            bool      `json:"isRead"`
	BodyPreview       string    `json:"bodyPreview,omitempty"`
	InternetMessageID string    `json:"internetMessageId,omitempty"`
}

// Sender is Graph's {"emailAddress":{"name","address"}}.
type Sender struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

// Page is one page of a message list.
type Page struct {
	Value    []MessageInfo `json:"value"`
	NextLink string        `json:"@odata.nextLink"`
}

// maxPages guards against a server that keeps sending nextLinks.
const maxPages = 10000

// ListMessages lists the messages of mb (or one of its folders), following
// @odata.nextLink verbatim (Graph's paging must not be recomputed with
// $skip) until there is none or Limit is reached.
func (c *Client) ListMessages(ctx context.Context, mb Mailbox, opts ListOptions) ([]MessageInfo, error) {
	path := mb.path() + "/messages"
	if opts.Folder != "" {
		path = mb.path() + "/mailFolders/" + url.PathEscape(opts.Folder) + "/messages"
	}
	q := url.Values{}
	if opts.Top > 0 {
		q.Set("$top", strconv.Itoa(opts.Top))
	}
	if len(opts.Select) > 0 {
		q.Set("$select", strings.Join(opts.Select, ","))
	}
	next := c.base() + path
	if len(q) > 0 {
		next += "?" + q.Encode()
	}
	var out []MessageInfo
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			return out, fmt.Errorf("graph list messages: more than %d pages", maxPages)
		}
		if err := c.sameOrigin(next); err != nil {
			return out, err
		}
		data, err := c.do(ctx, http.MethodGet, next, nil, http.StatusOK)
		if err != nil {
			return out, fmt.Errorf("graph list messages of %s: %w", mb, err)
		}
		page, err := DecodePage(data)
		if err != nil {
			return out, fmt.Errorf("graph list messages of %s: %w", mb, err)
		}
		for _, m := range page.Value {
			out = append(out, m)
			if opts.Limit > 0 && len(out) >= opts.Limit {
				return out, nil
			}
		}
		next = page.NextLink
	}
	return out, nil
}

// DecodePage decodes one page of a message list.
func DecodePage(data []byte) (*Page, error) {
	var p Page
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decode message page: %w", err)
	}
	return &p, nil
}

// sameOrigin refuses URLs (a nextLink) off the Graph host we were given.
func (c *Client) sameOrigin(raw string) error {
	b, err := url.Parse(c.base())
	if err != nil {
		return fmt.Errorf("graph base url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("graph next link: %w", err)
	}
	if !strings.EqualFold(u.Scheme, b.Scheme) || !strings.EqualFold(u.Host, b.Host) {
		return fmt.Errorf("graph next link points at %s://%s, not %s://%s: not sending the token there", u.Scheme, u.Host, b.Scheme, b.Host)
	}
	return nil
}
