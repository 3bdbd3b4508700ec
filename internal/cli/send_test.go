package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/demo"
	"github.com/mailoauth/mailoauth/internal/emulator"
)

// parsedMail is what a delivered message holds, read back with go-message.
type parsedMail struct {
	Subject     string
	From        string
	To          []string
	Cc          []string
	Body        string
	Attachments map[string]string // name → content
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse delivered message: %v\n%s", err, raw)
	}
	var pm parsedMail
	pm.Subject, _ = r.Header.Subject()
	if from, err := r.Header.AddressList("From"); err == nil && len(from) > 0 {
		pm.From = from[0].Address
	}
	for _, key := range []string{"To", "Cc"} {
		list, _ := r.Header.AddressList(key)
		for _, a := range list {
			if key == "To" {
				pm.To = append(pm.To, a.Address)
			} else {
				pm.Cc = append(pm.Cc, a.Address)
			}
		}
	}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		b, _ := io.ReadAll(p.Body)
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			pm.Body += strings.ReplaceAll(string(b), "\r\n", "\n")
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			if pm.Attachments == nil {
				pm.Attachments = map[string]string{}
			}
			pm.Attachments[name] = string(b)
		}
	}
	return pm
}

// inboxBySubject returns the delivered message with this subject in the
// mailbox's inbox, read from the emulator's store.
func inboxBySubject(t *testing.T, env *demo.Env, mailbox, subject string) []byte {
	t.Helper()
	for _, m := range env.Exchange.Messages(mailbox, "inbox") {
		if m.Subject == subject {
			return m.Raw
		}
	}
	t.Fatalf("no message %q in the inbox of %s", subject, mailbox)
	return nil
}

// TestSendEmulator sends over SMTP and Graph, as the user and as the app,
// with attachments, and reads each message back from the recipient's
// emulated mailbox.
func TestSendEmulator(t *testing.T) {
	env := startDemoEnv(t, true)
	dir := t.TempDir()
	report := filepath.Join(dir, "report.csv")
	must(t, os.WriteFile(report, []byte("a,b\n1,2\n"), 0o600))
	notes := filepath.Join(dir, "notes.txt")
	must(t, os.WriteFile(notes, []byte("some notes\n"), 0o600))
	bob := "bob@contoso.com"

	tests := []struct {
		name    string
		args    []string
		stdin   string
		mailbox string // where to read it back
		want    parsedMail
	}{
		{
			name:    "smtp, user, attachments",
			args:    []string{"send", "demo", "--via", "smtp", "--to", bob, "--cc", env.User, "--subject", "Quarterly report (SMTP)", "--attach", report, "--attach", notes},
			stdin:   "Hello Bob,\nthe report is attached.\n",
			mailbox: bob,
			want: parsedMail{Subject: "Quarterly report (SMTP)", From: env.User, To: []string{bob}, Cc: []string{env.User},
				Body: "Hello Bob,\nthe report is attached.\n", Attachments: map[string]string{"report.csv": "a,b\n1,2\n", "notes.txt": "some notes\n"}},
		},
		{
			name:    "graph, user, attachment",
			args:    []string{"send", "demo", "--via", "graph", "--to", bob, "--subject", "Réunion (Graph)", "--attach", report},
			stdin:   "Über Graph.\n",
			mailbox: bob,
			want: parsedMail{Subject: "Réunion (Graph)", From: env.User, To: []string{bob},
				Body: "Über Graph.\n", Attachments: map[string]string{"report.csv": "a,b\n1,2\n"}},
		},
		{
			name:    "default via is smtp",
			args:    []string{"send", "demo", "--to", env.User, "--subject", "to myself"},
			stdin:   "note to self\n",
			mailbox: env.User,
			want:    parsedMail{Subject: "to myself", From: env.User, To: []string{env.User}, Body: "note to self\n"},
		},
		{
			name:    "smtp, app",
			args:    []string{"send", "demo-app", "--via", "smtp", "--to", bob, "--subject", "from the daemon (SMTP)"},
			stdin:   "app-only SMTP\n",
			mailbox: bob,
			want:    parsedMail{Subject: "from the daemon (SMTP)", From: env.User, To: []string{bob}, Body: "app-only SMTP\n"},
		},
		{
			name:    "graph, app uses /users/{email}",
			args:    []string{"send", "demo-app", "--via", "graph", "--to", bob, "--subject", "from the daemon (Graph)"},
			stdin:   "app-only Graph\n",
			mailbox: bob,
			want:    parsedMail{Subject: "from the daemon (Graph)", From: env.User, To: []string{bob}, Body: "app-only Graph\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env.ConfigFile, tt.stdin, tt.args...)
			if code != ExitOK {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if !strings.HasPrefix(errOut, "sent via ") {
				t.Errorf("stderr %q, want a 'sent via' line", errOut)
			}
			got := parseMail(t, inboxBySubject(t, env, tt.mailbox, tt.want.Subject))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delivered message (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSendGraphLargeAttachment sends a ~10 MB file with --via graph, which
// goes as a draft plus a chunked upload session, and reads it back intact
// from the recipient's emulated inbox.
func TestSendGraphLargeAttachment(t *testing.T) {
	env := startDemoEnv(t, true)
	// A 251-byte pattern (prime, so no chunk boundary lines up with it):
	// chunks put in the wrong place would show.
	var unit [251]byte
	for i := range unit {
		unit[i] = byte(i * 131)
	}
	data := bytes.Repeat(unit[:], (10<<20)/len(unit)+50)
	big := filepath.Join(t.TempDir(), "big.bin")
	must(t, os.WriteFile(big, data, 0o600))
	code, _, errOut := runCLI(t, env.ConfigFile, "see attached\n", "send", "demo", "--via", "graph", "--to", env.User, "--subject", "ten megabytes", "--attach", big)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	raw := inboxBySubject(t, env, env.User, "ten megabytes")
	r, err := mail.CreateReader(bytes.NewReader(raw))
	must(t, err)
	var got []byte
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		must(t, err)
		if ah, ok := p.Header.(*mail.AttachmentHeader); ok {
			if name, _ := ah.Filename(); name == "big.bin" {
				got, err = io.ReadAll(p.Body)
				must(t, err)
			}
		}
	}
	if !bytes.Equal(got, data) {
		t.Errorf("delivered big.bin: %d bytes, want the %d sent, intact", len(got), len(data))
	}
	if n := len(env.Exchange.Messages(env.User, "drafts")); n != 0 {
		t.Errorf("%d drafts left after the send, want 0", n)
	}
}

// TestSendFailures: refusals come back with the server's reply and hint,
// and usage mistakes exit 2 before anything is sent.
func TestSendFailures(t *testing.T) {
	env := startDemoEnv(t, true)
	t.Run("smtp auth disabled", func(t *testing.T) {
		must(t, env.Emulator.UpdateUser(emulator.UserUpdate{User: env.User, SMTPAuth: ptr("disabled")}))
		defer func() { must(t, env.Emulator.UpdateUser(emulator.UserUpdate{User: env.User, SMTPAuth: ptr("")})) }()
		code, _, errOut := runCLI(t, env.ConfigFile, "hi\n", "send", "demo", "--to", env.User)
		wantFailure(t, code, errOut, "535 5.7.139", "disabled for the Mailbox", "hint: Authenticated SMTP is turned off for this mailbox")
	})
	t.Run("send as another mailbox is refused", func(t *testing.T) {
		code, out, errOut := runCLI(t, env.ConfigFile, "hi\n", "--json", "send", "demo", "--to", env.User, "--from", "bob@contoso.com", "--via", "smtp")
		if code != ExitError {
			t.Errorf("exit code %d, want %d; stderr:\n%s", code, ExitError, errOut)
		}
		var got struct {
			OK     bool
			Report struct {
				Steps []struct{ Name, Reply, Hint string }
			}
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		last := got.Report.Steps[len(got.Report.Steps)-1]
		if got.OK || last.Name != "send" || !strings.Contains(last.Reply, "5.2.252") || !strings.Contains(last.Hint, "Send As") {
			t.Errorf("json: ok %v, last step %+v; want a refused send with SendAsDenied and its hint", got.OK, last)
		}
	})
	t.Run("graph as a mailbox without access", func(t *testing.T) {
		code, _, errOut := runCLI(t, env.ConfigFile, "hi\n", "send", "demo", "--via", "graph", "--to", env.User, "--from", "bob@contoso.com")
		wantFailure(t, code, errOut, "/v1.0/users/bob@contoso.com", "FAIL send", "server said: 403")
	})
	t.Run("not signed in", func(t *testing.T) {
		fresh := startDemoEnv(t, false)
		code, _, errOut := runCLI(t, fresh.ConfigFile, "hi\n", "send", "demo", "--to", fresh.User, "--via", "graph")
		if code != ExitRelogin || !strings.Contains(errOut, "mailoauth login demo") {
			t.Errorf("exit %d, stderr:\n%s\nwant %d and the login command", code, errOut, ExitRelogin)
		}
	})
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no recipient", []string{"send", "demo"}, "at least one recipient"},
		{"bad via", []string{"send", "demo", "--to", "x@contoso.com", "--via", "ews"}, `--via "ews"`},
		{"missing attachment", []string{"send", "demo", "--to", "x@contoso.com", "--attach", "/nonexistent/file"}, "attach"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, env.ConfigFile, "hi\n", tt.args...)
			if code != ExitUsage || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, ExitUsage, tt.wantErr)
			}
		})
	}
}

// wantFailure reports, without stopping the test, an exit code other than
// ExitError and every string of want that stderr lacks.
func wantFailure(t *testing.T, code int, errOut string, want ...string) {
	t.Helper()
	if code != ExitError {
		t.Errorf("exit code %d, want %d", code, ExitError)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}
