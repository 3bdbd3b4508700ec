package mailclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/pop3"
	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/sasl"
)

// TestIntegrationDovecot runs every check and Send against a real Dovecot
// 2.3 validating our tokens as JWTs: IMAP, POP3 and submission, each over
// implicit TLS and STARTTLS, with XOAUTH2 and OAUTHBEARER, then bad and
// expired tokens, which must come back as *sasl.AuthError carrying
// Dovecot's JSON challenge status.
func TestIntegrationDovecot(t *testing.T) {
	dovecot.SkipUnlessEnabled(t)
	srv := dovecot.Start(t, dovecot.Options{})
	const alice = "alice@example.test"
	for i := 1; i <= 3; i++ {
		srv.Deliver(t, "bob@example.test", alice, []byte(fmt.Sprintf(
			"From: Bob <bob@example.test>\r\nTo: %s\r\nSubject: fixture %d\r\nMessage-ID: <fixture-%d@example.test>\r\nDate: Mon, 2 Nov 2026 10:0%d:00 +0000\r\n\r\nbody %d\r\n", alice, i, i, i, i)))
	}
	tlsConf, err := mailclient.TLSConfig(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	good := srv.Token(t, alice, jose.RS256, time.Hour)
	goodPS := srv.Token(t, alice, jose.PS256, time.Hour)

	type check func(context.Context, mailclient.Server, mailclient.Options) (*mailclient.Report, error)
	checks := map[string]check{"imap": mailclient.CheckIMAP, "pop3": mailclient.CheckPOP3, "smtp": mailclient.CheckSMTP}

	for _, scheme := range []string{"imaps", "imap", "pop3s", "pop3", "smtps", "smtp"} {
		proto := strings.TrimSuffix(scheme, "s")
		if scheme == "pop3" || scheme == "pop3s" {
			proto = "pop3"
		}
		for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
			t.Run(scheme+"/"+mech, func(t *testing.T) {
				s, err := mailclient.ParseURL(srv.URL(scheme))
				if err != nil {
					t.Fatal(err)
				}
				tok := good
				if mech == "OAUTHBEARER" {
					tok = goodPS
				}
				opts := mailclient.Options{User: alice, Token: tok, Mechanism: mech, TLSConfig: tlsConf, Recent: 2}
				rep, err := checks[proto](ctx(t), s, opts)
				if err != nil {
					t.Fatalf("%v\n%s\ndovecot log:\n%s", err, rep, srv.Log())
				}
				if rep.Mechanism != mech {
					t.Errorf("mechanism = %s, want %s", rep.Mechanism, mech)
				}
				if proto != "smtp" {
					if len(rep.Messages) != 2 || rep.Messages[0].Subject != "fixture 3" || rep.Messages[1].Subject != "fixture 2" {
						t.Errorf("messages = %+v, want fixtures 3 and 2", rep.Messages)
					}
				}
			})
		}
	}

	t.Run("default mechanism is XOAUTH2", func(t *testing.T) {
		s, _ := mailclient.ParseURL(srv.URL("imaps"))
		rep, err := mailclient.CheckIMAP(ctx(t), s, mailclient.Options{User: alice, Token: good, TLSConfig: tlsConf})
		if err != nil || rep.Mechanism != "XOAUTH2" {
			t.Fatalf("mechanism %q, err %v", rep.Mechanism, err)
		}
	})

	t.Run("send", func(t *testing.T) {
		for _, scheme := range []string{"smtps", "smtp"} {
			for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
				s, _ := mailclient.ParseURL(srv.URL(scheme))
				subject := "sent via " + scheme + " " + mech
				msg := &mailclient.Message{
					To: []string{"bob@example.test"}, Subject: subject,
					Body:        strings.NewReader("hello from the integration test\n"),
					Attachments: []mailclient.Attachment{{Name: "notes.txt", Data: []byte("attached\n")}},
				}
				rep, err := mailclient.Send(ctx(t), s, mailclient.Options{User: alice, Token: good, Mechanism: mech, TLSConfig: tlsConf}, msg)
				if err != nil {
					t.Fatalf("%s %s: %v\n%s\n%s", scheme, mech, err, rep, srv.Log())
				}
			}
		}
		relayed := srv.Relayed(t)
		if len(relayed) != 4 {
			t.Fatalf("smtp-sink got %d messages, want 4", len(relayed))
		}
		for _, m := range relayed {
			s := string(m)
			for _, want := range []string{"X-Mail-Args: <alice@example.test> AUTH=alice@example.test", "X-Rcpt-Args: <bob@example.test>",
				"Subject: sent via ", "Content-Disposition: attachment; filename=notes.txt", "by mail.example.test with ESMTPSA"} {
				if !strings.Contains(s, want) {
					t.Errorf("relayed message lacks %q:\n%s", want, s)
				}
			}
		}
	})

	// Bad tokens: expired, signed by someone else, for another user.
	bad := map[string]string{
		"expired":    srv.Token(t, alice, jose.RS256, -time.Hour),
		"other user": srv.Token(t, "bob@example.test", jose.RS256, time.Hour),
		"tampered":   good[:len(good)-4] + "AAAA",
	}
	// Dovecot's statuses (reference §7): XOAUTH2 → "401", OAUTHBEARER →
	// "invalid_token"; final replies as recorded there.
	wantStatus := map[string]string{"XOAUTH2": "401", "OAUTHBEARER": "invalid_token"}
	wantReply := map[string]string{
		"imap": "NO [AUTHENTICATIONFAILED] Authentication failed.",
		"pop3": "-ERR [AUTH] Authentication failed.",
		"smtp": "535 5.7.8 Authentication failed.",
	}
	// Each refusal costs Dovecot's 500 ms failure flush, so they run in
	// parallel inside one group (the group returns when all are done).
	t.Run("bad tokens", func(t *testing.T) {
		for name, tok := range bad {
			for _, scheme := range []string{"imaps", "imap", "pop3s", "pop3", "smtps", "smtp"} {
				proto := strings.TrimSuffix(scheme, "s")
				for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
					if name != "expired" && scheme != "imaps" {
						continue // one protocol is enough for the other bad tokens
					}
					t.Run(name+"/"+scheme+"/"+mech, func(t *testing.T) {
						t.Parallel()
						s, _ := mailclient.ParseURL(srv.URL(scheme))
						rep, err := checks[proto](ctx(t), s, mailclient.Options{User: alice, Token: tok, Mechanism: mech, TLSConfig: tlsConf})
						var ae *sasl.AuthError
						if !errors.As(err, &ae) {
							t.Fatalf("err = %v, want *sasl.AuthError\n%s", err, rep)
						}
						if ae.Status != wantStatus[mech] || ae.Mechanism != mech {
							t.Errorf("AuthError = %+v, want status %q", ae, wantStatus[mech])
						}
						last := rep.Steps[len(rep.Steps)-1]
						if last.Name != "authenticate" || last.Reply != wantReply[proto] || last.Status != wantStatus[mech] || last.Hint == "" {
							t.Errorf("last step = %+v", last)
						}
						if proto == "pop3" {
							var pe *pop3.Error
							if !errors.As(err, &pe) {
								t.Errorf("err does not carry *pop3.Error: %v", err)
							}
						}
						if strings.Contains(err.Error(), tok) || strings.Contains(rep.String(), tok) {
							t.Error("token leaked into the error or report")
						}
					})
				}
			}
		}
	})
	if strings.Contains(srv.Log(), good) {
		t.Error("Dovecot logged a token (auth_debug must stay off)")
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
