package exchange

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func FuzzParsePOPCommand(f *testing.F) {
	for _, s := range []string{"CAPA", "AUTH XOAUTH2", "AUTH XOAUTH2 dXNlcj0=", "RETR 1", "TOP 1 10", "LIST  2", "", "X", "QUIT\x00", "ÄÖÜ 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParsePOPCommand(line)
		if err != nil {
			return
		}
		if len(cmd.Name) < 3 || len(cmd.Name) > 4 || strings.ToUpper(cmd.Name) != cmd.Name {
			t.Fatalf("bad keyword %q from %q", cmd.Name, line)
		}
		for _, a := range cmd.Args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("bad argument %q from %q", a, line)
			}
		}
	})
}

func FuzzParseXOAUTH2(f *testing.F) {
	for _, s := range []string{"user=a@b\x01auth=Bearer t\x01\x01", "user=\x01\x01", "\x01\x01", "", "user=a\x01auth=bearer \x01\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, tok, err := ParseXOAUTH2(b)
		if err != nil {
			return
		}
		if u == "" || tok == "" || strings.ContainsAny(u, "\x01") || strings.ContainsAny(tok, "\x01 ") {
			t.Fatalf("accepted %q as user %q token %q", b, u, tok)
		}
		if string(b) != "user="+u+"\x01auth="+string(b[len("user=")+len(u)+len("\x01auth="):][:7])+tok+"\x01\x01" {
			t.Fatalf("round trip of %q", b)
		}
	})
}

func FuzzParseOAuthBearer(f *testing.F) {
	for _, s := range []string{"n,a=a@b,\x01host=h\x01port=993\x01auth=Bearer t\x01\x01", "n,,\x01auth=Bearer t\x01\x01", "n,a=x,\x01port=\x01\x01", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ob, err := ParseOAuthBearer(b)
		if err == nil && ob.Token == "" {
			t.Fatalf("accepted %q without a token", b)
		}
	})
}

// FuzzPOP3Session feeds arbitrary client input to an unauthenticated POP3
// session: it must never panic or hang, and every reply line must be a
// POP3 status or continuation.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range []string{"CAPA\r\nQUIT\r\n", "USER a\r\nPASS b\r\n", "AUTH XOAUTH2\r\n*\r\n", "AUTH XOAUTH2\r\nAAAA\r\nSTAT\r\n", "RETR 1\r\nDELE x\r\n", "\r\n\r\n"} {
		f.Add(s)
	}
	e := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, in string) {
		c, s := net.Pipe()
		done := make(chan struct{})
		go func() { defer close(done); e.servePOP3(s) }()
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c, in+"\r\nQUIT\r\n")
		}()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-ERR") && line != ".\r\n" && !isCapaLine(line) {
				t.Fatalf("unexpected reply line %q", line)
			}
			if strings.HasPrefix(line, "+OK Microsoft Exchange Server POP3 server signing off.") {
				break
			}
		}
		c.Close()
		<-done
	})
}

func isCapaLine(l string) bool {
	switch strings.TrimRight(l, "\r\n") {
	case "TOP", "UIDL", "USER", "SASL XOAUTH2", "SASL XOAUTH2 OAUTHBEARER":
		return true
	}
	return false
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"From: a@b\r\nTo: c@d, \"E\" <e@f>\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n\r\nbody\r\n",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n--x\r\nContent-Disposition: attachment; filename=a\r\n\r\nzz\r\n--x--\r\n",
		"", "\r\n", "Subject: x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := parseMessage(raw)
		if m == nil || (m.BodyType != "text" && m.BodyType != "html") {
			t.Fatalf("parseMessage(%q) = %+v", raw, m)
		}
	})
}

// FuzzGraphSendMail posts arbitrary bodies to sendMail with a valid token
// (in process, no listener): the handler must answer 202 or a Graph error
// envelope, never panic or 500.
func FuzzGraphSendMail(f *testing.F) {
	for _, s := range []string{
		`{"message":{"subject":"s","body":{"contentType":"Text","content":"c"},"toRecipients":[{"emailAddress":{"address":"bob@contoso.com"}}]}}`,
		`{"message":{"toRecipients":[{"emailAddress":{"address":"x"}}],"attachments":[{"@odata.type":"#microsoft.graph.fileAttachment","name":"a","contentBytes":"!!"}]}}`,
		`{"message":{"from":{"emailAddress":{"address":"bob@contoso.com"}},"toRecipients":[{"emailAddress":{"address":"a@b"}}],"internetMessageHeaders":[{"name":"y","value":"z"}]}}`,
		`{"message":null}`, `[]`, ``, `{"saveToSentItems":"no"}`,
	} {
		f.Add(s, "application/json")
	}
	f.Add("RnJvbTogYUBiDQoNCmhp", "text/plain")
	s := newFuzzServer(f)
	tok := fuzzGraphToken(f, s)
	h := s.GraphHandler()
	f.Fuzz(func(t *testing.T, body, ct string) {
		req := httptest.NewRequest("POST", "https://127.0.0.1/v1.0/me/sendMail", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == 202:
		case rec.Code >= 400 && rec.Code < 500:
			var env struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error.Code == "" || env.Error.Message == "" {
				t.Fatalf("%d without a Graph error envelope: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}

// fuzzGraphToken gets a delegated Graph token for alice from the built-in
// scenario by ROPC, through the emulator's handler in process.
func fuzzGraphToken(tb testing.TB, s *Server) string {
	tb.Helper()
	d := s.em.Demo()
	form := url.Values{"grant_type": {"password"}, "client_id": {d.PublicClientID}, "username": {d.Users[0]},
		"password": {d.Passwords[0]}, "scope": {"https://graph.microsoft.com/Mail.Send"}}
	req := httptest.NewRequest("POST", "https://127.0.0.1/"+d.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.em.Handler().ServeHTTP(rec, req)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.AccessToken == "" {
		tb.Fatalf("ROPC: %d %s", rec.Code, rec.Body.String())
	}
	return out.AccessToken
}
