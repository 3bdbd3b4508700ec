package mailclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
)

// Message is a plain-text message with optional attachments, as `mailoauth
// send` builds it: body from a reader (stdin), files attached by path.
type Message struct {
	// From defaults to Options.User when empty (a shared mailbox sends as
	// itself).
	From string
	// To and Cc are written into the headers and are recipients; each is
	// an address with or without a display name ("Bob <bob@example.com>").
	To  []string
	Cc  []string
	Bcc []string // envelope only, never written into the headers
	// Subject is encoded (RFC 2047) when it is not ASCII.
	Subject string
	// Body is the UTF-8 text body; nil means an empty body.
	Body io.Reader
	// Attachments are added as base64 parts.
	Attachments []Attachment
	// Date defaults to the time of writing; MessageID to a fresh random id
	// in From's domain (not the local host name, which would leak it).
	Date      time.Time
	MessageID string
}

// Attachment is one attached file.
type Attachment struct {
	// Name is the file name the recipient sees.
	Name string
	// ContentType defaults to DetectContentType(Name, Data).
	ContentType string
	// Data is the file's content.
	Data []byte
}

// AttachFile reads path into an Attachment named after the file, with its
// content type detected from the extension, else the content.
func AttachFile(path string) (Attachment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Attachment{}, fmt.Errorf("attach: %w", err)
	}
	name := filepath.Base(path)
	return Attachment{Name: name, ContentType: DetectContentType(name, data), Data: data}, nil
}

// DetectContentType returns the MIME type for a file: from its extension
// when known (mime.TypeByExtension), else sniffed from its first bytes
// (http.DetectContentType), which falls back to application/octet-stream.
func DetectContentType(name string, data []byte) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return http.DetectContentType(data)
}

// Recipients returns every envelope recipient: To, Cc and Bcc.
func (m *Message) Recipients() []string {
	out := make([]string, 0, len(m.To)+len(m.Cc)+len(m.Bcc))
	out = append(out, m.To...)
	out = append(out, m.Cc...)
	return append(out, m.Bcc...)
}

// WriteTo writes m as an RFC 5322 / MIME message: a single text/plain part
// (quoted-printable) when there are no attachments, else multipart/mixed
// with base64 attachments. Header values are encoded by go-message.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	if m.From == "" {
		return 0, errors.New("message: no From address")
	}
	if len(m.Recipients()) == 0 {
		return 0, errors.New("message: no recipients")
	}
	var h gomail.Header
	from, err := parseAddrs([]string{m.From})
	if err != nil {
		return 0, fmt.Errorf("message from: %w", err)
	}
	h.SetAddressList("From", from)
	for key, list := range map[string][]string{"To": m.To, "Cc": m.Cc} {
		if len(list) == 0 {
			continue
		}
		addrs, err := parseAddrs(list)
		if err != nil {
			return 0, fmt.Errorf("message %s: %w", strings.ToLower(key), err)
		}
		h.SetAddressList(key, addrs)
	}
	h.SetSubject(m.Subject)
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	h.SetDate(date)
	if m.MessageID != "" {
		h.SetMessageID(trimAngles(m.MessageID))
	} else {
		domain := "mailoauth.invalid"
		if i := strings.LastIndexByte(from[0].Address, '@'); i >= 0 {
			domain = from[0].Address[i+1:]
		}
		if err := h.GenerateMessageIDWithHostname(domain); err != nil {
			return 0, fmt.Errorf("message id: %w", err)
		}
	}

	cw := &countWriter{w: w}
	body := m.Body
	if body == nil {
		body = strings.NewReader("")
	}
	if len(m.Attachments) == 0 {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		bw, err := gomail.CreateSingleInlineWriter(cw, h)
		if err != nil {
			return cw.n, err
		}
		if _, err := io.Copy(bw, body); err != nil {
			return cw.n, fmt.Errorf("message body: %w", err)
		}
		return cw.n, bw.Close()
	}
	mw, err := gomail.CreateWriter(cw, h)
	if err != nil {
		return cw.n, err
	}
	var th gomail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return cw.n, err
	}
	if _, err := io.Copy(tw, body); err != nil {
		return cw.n, fmt.Errorf("message body: %w", err)
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	for _, a := range m.Attachments {
		var ah gomail.AttachmentHeader
		ct := a.ContentType
		if ct == "" {
			ct = DetectContentType(a.Name, a.Data)
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			mt, params = "application/octet-stream", nil
		}
		ah.SetContentType(mt, params)
		ah.SetFilename(a.Name)
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return cw.n, err
		}
		if _, err := aw.Write(a.Data); err != nil {
			return cw.n, err
		}
		if err := aw.Close(); err != nil {
			return cw.n, err
		}
	}
	return cw.n, mw.Close()
}

// Bytes returns the message as WriteTo writes it.
func (m *Message) Bytes() ([]byte, error) {
	var b bytes.Buffer
	_, err := m.WriteTo(&b)
	return b.Bytes(), err
}

func parseAddrs(list []string) ([]*gomail.Address, error) {
	out := make([]*gomail.Address, 0, len(list))
	for _, s := range list {
		a, err := gomail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func trimAngles(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
}

func decodeHeader(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}
