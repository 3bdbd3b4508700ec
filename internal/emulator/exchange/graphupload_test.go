package exchange

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
	"github.com/google/go-cmp/cmp"
)

// attachmentsOf returns filename → bytes of raw's attachments.
func attachmentsOf(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ah, ok := p.Header.(*mail.AttachmentHeader); ok {
			name, _ := ah.Filename()
			out[name], _ = io.ReadAll(p.Body)
		}
	}
}

// TestGraphLargeAttachmentUpload drives the draft + upload session + send
// protocol over the wire, with the checks Graph makes on each PUT.
func TestGraphLargeAttachmentUpload(t *testing.T) {
	e := newEnv(t)
	aliceG := e.userToken(appPublic, alice, graphScope)
	draft := mailJSON("large", bob)["message"].(map[string]any)
	draft["attachments"] = []map[string]any{{"@odata.type": "#microsoft.graph.fileAttachment", "name": "small.txt",
		"contentType": "text/plain", "contentBytes": base64.StdEncoding.EncodeToString([]byte("small"))}}
	r := e.graph("POST", "/me/messages", aliceG, draft)
	id, _ := r.body["id"].(string)
	if r.status != http.StatusCreated || id == "" || r.body["isDraft"] != true {
		t.Fatalf("create draft: %d %s", r.status, r.raw)
	}
	if n := len(e.xs.Messages(alice, "drafts")); n != 1 {
		t.Errorf("drafts: %d, want 1", n)
	}
	big := make([]byte, 2*uploadChunkUnit+12345)
	for i := range big {
		big[i] = byte(i * 31)
	}
	item := func(size int) map[string]any {
		return map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": "big.bin", "size": size, "contentType": "application/octet-stream"}}
	}
	if r := e.graph("POST", "/me/messages/"+id+"/attachments/createUploadSession", aliceG, item(maxUploadAttachment+1)); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("151 MB session: %d %s, want 413", r.status, r.raw)
	}
	if r := e.graph("POST", "/me/messages/nosuch/attachments/createUploadSession", aliceG, item(10)); r.errCode() != "ErrorItemNotFound" {
		t.Errorf("session on a missing draft: %d %s", r.status, r.raw)
	}
	r = e.graph("POST", "/me/messages/"+id+"/attachments/createUploadSession", aliceG, item(len(big)))
	up, _ := r.body["uploadUrl"].(string)
	if r.status != http.StatusCreated || !strings.HasPrefix(up, strings.TrimSuffix(e.xs.GraphURL, "/v1.0")+uploadPathPrefix) {
		t.Fatalf("create upload session: %d %s", r.status, r.raw)
	}
	if diff := cmp.Diff([]any{"0-"}, r.body["nextExpectedRanges"]); diff != "" {
		t.Errorf("nextExpectedRanges (-want +got):\n%s", diff)
	}
	put := func(token string, first, last, total int) graphReply {
		return e.graph("PUT", up, token, string(big[first:last+1]), "Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, total))
	}
	u := uploadChunkUnit
	for _, tt := range []struct {
		name              string
		token             string
		first, last, tot  int
		wantStatus        int
		wantCode, wantMsg string
	}{
		{"bearer token sent", aliceG, 0, u - 1, len(big), 401, "InvalidAuthenticationToken", "do not send an Authorization header"},
		{"not at the next byte", "", u, 2*u - 1, len(big), 416, "InvalidContentRange", "next expected byte 0"},
		{"total not the size", "", 0, u - 1, len(big) + 1, 400, "InvalidContentRange", "does not match the attachment size"},
		{"chunk not a multiple of 320 KiB", "", 0, u, len(big), 400, "InvalidContentRange", "multiple of 320 KiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := put(tt.token, tt.first, tt.last, tt.tot)
			if r.status != tt.wantStatus || r.errCode() != tt.wantCode || !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("PUT: %d %s, want %d %s %q", r.status, r.raw, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
		})
	}
	if r := e.graph("PUT", strings.Replace(up, "authtoken=", "authtoken=x", 1), "", "x", "Content-Range", "bytes 0-0/1"); r.status != http.StatusNotFound {
		t.Errorf("PUT with a wrong authtoken: %d, want 404", r.status)
	}
	r = put("", 0, 2*u-1, len(big))
	if diff := cmp.Diff([]any{fmt.Sprintf("%d-", 2*u)}, r.body["nextExpectedRanges"]); r.status != http.StatusOK || diff != "" {
		t.Errorf("first chunk: %d %s", r.status, r.raw)
	}
	if r := put("", 2*u, len(big)-1, len(big)); r.status != http.StatusCreated || r.header.Get("Location") == "" {
		t.Errorf("last chunk: %d %s, want 201 with a Location", r.status, r.raw)
	}
	if r := put("", 0, u-1, len(big)); r.status != http.StatusNotFound {
		t.Errorf("PUT after completion: %d, want 404 (session over)", r.status)
	}

	narrowG := e.userToken(appNarrow, alice, "https://graph.microsoft.com/User.Read")
	if r := e.graph("POST", "/me/messages", narrowG, draft); r.errCode() != "ErrorAccessDenied" {
		t.Errorf("draft without Mail.ReadWrite: %d %s, want ErrorAccessDenied", r.status, r.raw)
	}
	if r := e.graph("POST", "/me/messages/"+id+"/send", aliceG, nil); r.status != http.StatusAccepted {
		t.Fatalf("send draft: %d %s", r.status, r.raw)
	}
	if r := e.graph("POST", "/me/messages/"+id+"/send", aliceG, nil); r.errCode() != "ErrorItemNotFound" {
		t.Errorf("second send: %d %s, want ErrorItemNotFound", r.status, r.raw)
	}
	if n := len(e.xs.Messages(alice, "drafts")); n != 0 {
		t.Errorf("drafts after send: %d, want 0", n)
	}
	sent := e.xs.Messages(alice, "sentitems")
	inbox := e.xs.Messages(bob, "inbox")
	if len(sent) != 1 || len(inbox) != 1 {
		t.Fatalf("sent items %d, bob's inbox %d; want 1 and 1", len(sent), len(inbox))
	}
	got := attachmentsOf(t, inbox[0].Raw)
	if !bytes.Equal(got["big.bin"], big) || string(got["small.txt"]) != "small" {
		t.Errorf("delivered attachments: big %d bytes (equal %v), small %q", len(got["big.bin"]), bytes.Equal(got["big.bin"], big), got["small.txt"])
	}
	if e.xs.uploads.buffered != 0 {
		t.Errorf("upload buffer still holds %d bytes after the send", e.xs.uploads.buffered)
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-327679/1000000", "bytes 5-4/10", "bytes 0-9/10", "bytes -1-3/4", "bytes 0-0/0", "items 0-1/2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		a, b, total, ok := parseContentRange(v)
		if ok && (a < 0 || b < a || b >= total || total > maxUploadAttachment) {
			t.Errorf("parseContentRange(%q) = %d-%d/%d accepted", v, a, b, total)
		}
	})
}

// TestGraphUploadBufferCap: sessions reserve their announced size, and the
// emulator refuses more than maxUploadBuffered in all (no bytes are held
// until they are PUT, so this allocates nothing).
func TestGraphUploadBufferCap(t *testing.T) {
	e := newEnv(t)
	aliceG := e.userToken(appPublic, alice, graphScope)
	r := e.graph("POST", "/me/messages", aliceG, mailJSON("cap", bob)["message"])
	id, _ := r.body["id"].(string)
	if r.status != http.StatusCreated {
		t.Fatalf("create draft: %d %s", r.status, r.raw)
	}
	item := map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": "f.bin", "size": maxUploadAttachment}}
	for i := range maxUploadBuffered / maxUploadAttachment {
		if r := e.graph("POST", "/me/messages/"+id+"/attachments/createUploadSession", aliceG, item); r.status != http.StatusCreated {
			t.Fatalf("session %d: %d %s", i, r.status, r.raw)
		}
	}
	if r := e.graph("POST", "/me/messages/"+id+"/attachments/createUploadSession", aliceG, item); r.status != http.StatusInsufficientStorage || r.errCode() != "ErrorQuotaExceeded" {
		t.Errorf("session over the cap: %d %s, want 507 ErrorQuotaExceeded", r.status, r.raw)
	}
}
