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
)

// Graph's limits for large attachments (user-sendmail and
// attachment-createuploadsession docs): a file of 3 MB or more is uploaded
// through an upload session, up to 150 MB, in chunks of a multiple of
// 320 KiB and at most 60 MiB each.
const (
	// UploadThreshold is the size from which an attachment is uploaded in
	// chunks instead of inline in the message JSON.
	UploadThreshold = 3 << 20
	// MaxAttachment is the largest file attachment Graph takes.
	MaxAttachment = 150 << 20
	// ChunkUnit is what every chunk but the last must be a multiple of.
	ChunkUnit = 320 << 10
	// MaxChunk is the largest chunk Graph takes in one PUT.
	MaxChunk = 60 << 20
	// DefaultChunkSize (10 × 320 KiB, about 3 MiB) keeps each PUT short,
	// so a retry after a throttle or a dropped connection resends little.
	DefaultChunkSize = 10 * ChunkUnit
)

// chunkSize is c.ChunkSize made valid: a multiple of ChunkUnit within
// [ChunkUnit, MaxChunk].
func (c *Client) chunkSize() int {
	n := c.ChunkSize
	if n <= 0 {
		return DefaultChunkSize
	}
	n -= n % ChunkUnit
	return min(max(n, ChunkUnit), MaxChunk)
}

// sendLarge sends msg as Graph documents for messages over sendMail's
// limit: POST {mailbox}/messages creates a draft holding the body and the
// attachments that fit in 4 MB of JSON; every other attachment goes
// through createUploadSession and chunked PUTs; POST …/messages/{id}/send
// sends the draft, which Exchange then moves to Sent Items (a sent draft
// is always saved, whatever SaveToSentItems says). On failure the draft is
// left in Drafts and the error names it.
func (c *Client) sendLarge(ctx context.Context, mb Mailbox, msg *Message) error {
	bare, err := json.Marshal(newMessageJSON(msg, nil))
	if err != nil {
		return fmt.Errorf("graph draft: %w", err)
	}
	if len(bare) > MaxSendMailRequest {
		return fmt.Errorf("graph sendMail: the message body is %.1f MB, over Graph's 4 MB: %w", float64(len(bare))/(1<<20), ErrTooLarge)
	}
	size := len(bare)
	var inline, upload []Attachment
	for _, a := range msg.Attachments {
		// JSON of one attachment: base64 plus its names, generously.
		n := base64.StdEncoding.EncodedLen(len(a.Data)) + len(a.Name)*6 + len(a.ContentType)*6 + 128
		if len(a.Data) < UploadThreshold && (len(a.Data) == 0 || size+n <= MaxSendMailRequest) {
			inline = append(inline, a)
			size += n
			continue
		}
		upload = append(upload, a)
	}
	body, err := json.Marshal(newMessageJSON(msg, inline))
	if err != nil {
		return fmt.Errorf("graph draft: %w", err)
	}
	data, err := c.do(ctx, http.MethodPost, c.base()+mb.path()+"/messages", body, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("graph create draft as %s: %w", mb, err)
	}
	var draft struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &draft); err != nil || draft.ID == "" {
		return fmt.Errorf("graph create draft as %s: no message id in the answer", mb)
	}
	msgURL := c.base() + mb.path() + "/messages/" + url.PathEscape(draft.ID)
	for _, a := range upload {
		if err := c.uploadAttachment(ctx, msgURL, a); err != nil {
			return fmt.Errorf("graph upload attachment %q (the draft stays in Drafts): %w", a.Name, err)
		}
	}
	if _, err := c.do(ctx, http.MethodPost, msgURL+"/send", nil, http.StatusAccepted); err != nil {
		return fmt.Errorf("graph send draft as %s (the draft stays in Drafts): %w", mb, err)
	}
	return nil
}

type uploadSession struct {
	UploadURL          string   `json:"uploadUrl"`
	NextExpectedRanges []string `json:"nextExpectedRanges"`
}

// uploadAttachment creates an upload session for a on the draft at msgURL
// and PUTs the bytes chunk by chunk. The upload URL carries its own
// credential, so the PUTs go without the bearer token (Graph refuses one
// there); each resumes where the server's nextExpectedRanges says.
func (c *Client) uploadAttachment(ctx context.Context, msgURL string, a Attachment) error {
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	req := map[string]any{"AttachmentItem": map[string]any{
		"attachmentType": "file", "name": a.Name, "size": len(a.Data), "contentType": ct,
	}}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("create upload session: %w", err)
	}
	_, data, err := c.send(ctx, call{method: http.MethodPost, url: msgURL + "/attachments/createUploadSession", body: body,
		ok: func(st int) bool { return st == http.StatusCreated || st == http.StatusOK }})
	if err != nil {
		return fmt.Errorf("create upload session: %w", err)
	}
	var sess uploadSession
	if err := json.Unmarshal(data, &sess); err != nil {
		return fmt.Errorf("create upload session: decode answer: %w", err)
	}
	u, err := url.Parse(sess.UploadURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("create upload session: the answer has no usable uploadUrl")
	}
	if u.Scheme == "http" && strings.HasPrefix(c.base(), "https:") {
		return fmt.Errorf("create upload session: the upload URL is plain http (%s), the file would go unencrypted", u.Host)
	}
	total := len(a.Data)
	off, err := nextStart(sess.NextExpectedRanges, 0, total)
	if err != nil {
		return err
	}
	chunk := c.chunkSize()
	for {
		end := min(off+chunk, total)
		h := http.Header{}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end-1, total))
		status, data, err := c.send(ctx, call{method: http.MethodPut, url: sess.UploadURL, body: a.Data[off:end],
			contentType: "application/octet-stream", header: h, noAuth: true,
			ok: func(st int) bool { return st == http.StatusOK || st == http.StatusCreated }})
		if err != nil {
			return fmt.Errorf("upload bytes %d-%d of %d: %w", off, end-1, total, err)
		}
		var next uploadSession
		_ = json.Unmarshal(data, &next) // the last chunk's answer may be empty
		if status == http.StatusCreated || len(next.NextExpectedRanges) == 0 {
			if end != total {
				return fmt.Errorf("upload: the server ended the session at byte %d of %d", end, total)
			}
			return nil
		}
		n, err := nextStart(next.NextExpectedRanges, off+1, total)
		if err != nil {
			return err
		}
		off = n
	}
}

// nextStart reads the start of the first of Graph's nextExpectedRanges
// ("12345-" or "12345-67890"); it must lie in [lo, total), so every chunk
// moves the upload forward and the loop ends.
func nextStart(ranges []string, lo, total int) (int, error) {
	if len(ranges) == 0 {
		return lo, nil
	}
	first, _, _ := strings.Cut(ranges[0], "-")
	n, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || n < lo || n >= total {
		return 0, fmt.Errorf("upload: the server expects bytes %q next, outside %d-%d", capText(ranges[0]), lo, total-1)
	}
	return n, nil
}
