package graph

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeUploads plays Graph's draft + upload session + send protocol in
// memory, checking Content-Range like Graph and recording what came.
type fakeUploads struct {
	mu       sync.Mutex
	draft    map[string]any // the draft's JSON
	files    map[string][]byte
	want     map[string]int // upload token → announced size
	names    map[string]string
	log      []string // "METHOD path [Content-Range] [auth]"
	sent     bool
	throttle map[int]bool // answer the PUT with this index 429 once
	puts     int
	// skipAhead makes the server claim, once, that it already holds more
	// bytes than were sent (a resumed upload): nextExpectedRanges jumps.
	badRange bool
}

func newFakeUploads() *fakeUploads {
	return &fakeUploads{files: map[string][]byte{}, want: map[string]int{}, names: map[string]string{}, throttle: map[int]bool{}}
}

func (f *fakeUploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	entry := r.Method + " " + r.URL.Path
	if cr := r.Header.Get("Content-Range"); cr != "" {
		entry += " " + cr
	}
	if r.Header.Get("Authorization") != "" {
		entry += " auth"
	}
	f.log = append(f.log, entry)
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1.0/me/messages":
		json.Unmarshal(body, &f.draft)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"AAMk/draft=="}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1.0/me/messages/AAMk/draft==/attachments/createUploadSession":
		var req struct {
			AttachmentItem struct {
				AttachmentType, Name, ContentType string
				Size                              int
			}
		}
		json.Unmarshal(body, &req)
		tok := fmt.Sprintf("s%d", len(f.want))
		f.want[tok] = req.AttachmentItem.Size
		f.names[tok] = req.AttachmentItem.Name
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"uploadUrl":"https://outlook.example.test/upload/%s?authtoken=x","nextExpectedRanges":["0-"]}`, tok)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/upload/"):
		idx := f.puts
		f.puts++
		if f.throttle[idx] {
			delete(f.throttle, idx)
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		tok := strings.TrimPrefix(r.URL.Path, "/upload/")
		var a, b, total int
		if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total); err != nil ||
			a != len(f.files[tok]) || b-a+1 != len(body) || total != f.want[tok] || (b+1 < total && len(body)%(320<<10) != 0) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"code":"InvalidContentRange","message":"bad range"}}`)
			return
		}
		f.files[tok] = append(f.files[tok], body...)
		if b+1 == total {
			w.WriteHeader(http.StatusCreated)
			return
		}
		next := b + 1
		if f.badRange {
			next = 0
		}
		fmt.Fprintf(w, `{"expirationDateTime":"2026-11-22T03:00:00Z","nextExpectedRanges":["%d-"]}`, next)
	case r.Method == http.MethodPost && r.URL.Path == "/v1.0/me/messages/AAMk/draft==/send":
		f.sent = true
		w.WriteHeader(http.StatusAccepted)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"ResourceNotFound","message":"nope"}}`)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// TestSendMailLarge: a message with a large attachment is sent as a draft
// (small attachment inline), chunked PUTs without the bearer token whose
// ranges follow on, and a send of the draft.
func TestSendMailLarge(t *testing.T) {
	f := newFakeUploads()
	c := New(&http.Client{Transport: handlerTransport{f}}, StaticToken(tok))
	c.BaseURL = "https://graph.example.test/v1.0"
	c.ChunkSize = 1 << 20 // rounded down to 960 KiB
	big := pattern(2<<20+100, 1)
	small := pattern(1000, 2)
	msg := &Message{Subject: "big", Body: "see attached", To: []string{"bob@example.test"},
		Attachments: []Attachment{{Name: "big.bin", ContentType: "application/octet-stream", Data: big}, {Name: "small.txt", ContentType: "text/plain", Data: small}}}
	msg.Attachments[0].Data = append(big, pattern(UploadThreshold, 3)...) // over the threshold
	big = msg.Attachments[0].Data
	if err := c.SendMail(t.Context(), Me, msg); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	total := len(big)
	var wantLog []string
	wantLog = append(wantLog, "POST /v1.0/me/messages auth", "POST /v1.0/me/messages/AAMk/draft==/attachments/createUploadSession auth")
	for off := 0; off < total; off += 960 << 10 {
		end := min(off+960<<10, total)
		wantLog = append(wantLog, fmt.Sprintf("PUT /upload/s0 bytes %d-%d/%d", off, end-1, total))
	}
	wantLog = append(wantLog, "POST /v1.0/me/messages/AAMk/draft==/send auth")
	if diff := cmp.Diff(wantLog, f.log); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if !bytes.Equal(f.files["s0"], big) || f.names["s0"] != "big.bin" || !f.sent {
		t.Errorf("uploaded %d bytes (want %d, equal %v), name %q, sent %v", len(f.files["s0"]), total, bytes.Equal(f.files["s0"], big), f.names["s0"], f.sent)
	}
	atts, _ := f.draft["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("draft attachments %v, want only small.txt", atts)
	}
	a := atts[0].(map[string]any)
	if got, _ := base64.StdEncoding.DecodeString(a["contentBytes"].(string)); a["name"] != "small.txt" || !bytes.Equal(got, small) {
		t.Errorf("inline attachment %v, want small.txt with its bytes", a["name"])
	}
}

// TestUploadRetry: a throttled chunk is resent after Retry-After, the
// upload then completes.
func TestUploadRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeUploads()
		f.throttle[1] = true
		c := New(&http.Client{Transport: handlerTransport{f}}, StaticToken(tok))
		c.BaseURL = "https://graph.example.test/v1.0"
		c.ChunkSize = ChunkUnit * 3
		data := pattern(UploadThreshold+5, 4)
		start := time.Now()
		err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}, Attachments: []Attachment{{Name: "a.bin", Data: data}}})
		if err != nil {
			t.Fatalf("SendMail: %v", err)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("waited %v, want the 5 s of Retry-After", waited)
		}
		if !bytes.Equal(f.files["s0"], data) || f.puts != 5 {
			t.Errorf("uploaded %d of %d bytes in %d PUTs, want all in 5 (4 chunks, one throttled)", len(f.files["s0"]), len(data), f.puts)
		}
	})
}

// TestUploadBadRange: a server that asks for bytes already sent again is
// not followed round in circles.
func TestUploadBadRange(t *testing.T) {
	f := newFakeUploads()
	f.badRange = true
	c := New(&http.Client{Transport: handlerTransport{f}}, StaticToken(tok))
	c.ChunkSize = ChunkUnit
	err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}, Attachments: []Attachment{{Name: "a.bin", Data: pattern(UploadThreshold, 5)}}})
	if err == nil || !strings.Contains(err.Error(), "expects bytes") || !strings.Contains(err.Error(), "stays in Drafts") || f.sent {
		t.Errorf("err = %v, sent %v; want a range error naming the draft, not sent", err, f.sent)
	}
}

func TestSendMailLimits(t *testing.T) {
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++; w.WriteHeader(http.StatusAccepted) })
	c := New(&http.Client{Transport: handlerTransport{h}}, StaticToken(tok))
	huge := Attachment{Name: "huge.bin", Data: make([]byte, MaxAttachment+1)}
	err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}, Attachments: []Attachment{huge}})
	if !errors.Is(err, ErrTooLarge) || calls != 0 {
		t.Errorf("150 MB + 1 attachment: err %v after %d requests, want ErrTooLarge and none", err, calls)
	}
	small := Attachment{Name: "small.bin", ContentType: "application/octet-stream", Data: make([]byte, 2<<20)}
	if err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}, Attachments: []Attachment{small}}); err != nil || calls != 1 {
		t.Errorf("2 MB attachment: err %v after %d requests, want one sendMail", err, calls)
	}
}

func TestChunkSize(t *testing.T) {
	for _, tt := range []struct{ in, want int }{
		{0, DefaultChunkSize}, {1, ChunkUnit}, {ChunkUnit*3 + 5, ChunkUnit * 3}, {1 << 30, MaxChunk - MaxChunk%ChunkUnit},
	} {
		c := &Client{ChunkSize: tt.in}
		if got := c.chunkSize(); got != tt.want || got%ChunkUnit != 0 {
			t.Errorf("chunkSize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// FuzzNextStart: whatever ranges a server sends, nextStart either errors
// or moves forward within the file.
func FuzzNextStart(f *testing.F) {
	for _, s := range []string{"0-", "983040-", "12-34", "-", "x-", "99999999999999999999-", ""} {
		f.Add(s, 10, 100)
	}
	f.Fuzz(func(t *testing.T, r string, lo, total int) {
		n, err := nextStart([]string{r}, lo, total)
		if err == nil && (n < lo || n >= total) {
			t.Errorf("nextStart(%q, %d, %d) = %d outside [lo, total)", r, lo, total, n)
		}
	})
}

// TestUploadRefusesPlainHTTP: an https Graph handing out an http upload URL
// does not get the file sent in clear.
func TestUploadRefusesPlainHTTP(t *testing.T) {
	puts := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut:
			puts++
		case strings.HasSuffix(r.URL.Path, "/createUploadSession"):
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"uploadUrl":"http://outlook.example.test/up?authtoken=x","nextExpectedRanges":["0-"]}`)
		default:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"d1"}`)
		}
	})
	c := New(&http.Client{Transport: handlerTransport{h}}, StaticToken(tok))
	err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}, Attachments: []Attachment{{Name: "a.bin", Data: pattern(UploadThreshold, 6)}}})
	if err == nil || !strings.Contains(err.Error(), "plain http") || puts != 0 {
		t.Errorf("err = %v after %d PUTs, want a refusal and none", err, puts)
	}
}
