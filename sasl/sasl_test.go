package sasl

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestXOAUTH2InitialResponseMicrosoftExample(t *testing.T) {
	// The example from Microsoft's "Authenticate an IMAP, POP or SMTP
	// connection using OAuth" page.
	got := XOAUTH2InitialResponse("test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")
	want := "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
	if got != want {
		t.Errorf("XOAUTH2InitialResponse = %q, want %q", got, want)
	}
}

func TestOAuthBearerInitialResponse(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"full", Options{User: "alice@example.test", Token: "T", Host: "127.0.0.1", Port: 21143},
			"n,a=alice@example.test,\x01host=127.0.0.1\x01port=21143\x01auth=Bearer T\x01\x01"},
		{"no host or port", Options{User: "alice@example.test", Token: "T"},
			"n,a=alice@example.test,\x01auth=Bearer T\x01\x01"},
		{"no user", Options{Token: "T"}, "n,,\x01auth=Bearer T\x01\x01"},
		{"escaped authzid", Options{User: "a,b=c", Token: "T"}, "n,a=a=2Cb=3Dc,\x01auth=Bearer T\x01\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := base64.StdEncoding.DecodeString(OAuthBearerInitialResponse(tt.opts))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(raw)); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
			mech, ir, _ := NewOAuthBearerClient(tt.opts).Start()
			if mech != OAUTHBEARER || string(ir) != tt.want {
				t.Errorf("Start() = %q, %q", mech, ir)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name    string
		offered []string
		prefer  string
		want    string
		wantErr bool
	}{
		{"exchange offers xoauth2 only", []string{"PLAIN", "XOAUTH2"}, "", XOAUTH2, false},
		{"gmail and dovecot offer both: xoauth2", []string{"OAUTHBEARER", "XOAUTH2"}, "", XOAUTH2, false},
		{"only oauthbearer", []string{"PLAIN", "OAUTHBEARER"}, "", OAUTHBEARER, false},
		{"case-insensitive", []string{"xoauth2"}, "", XOAUTH2, false},
		{"override to oauthbearer", []string{"XOAUTH2", "OAUTHBEARER"}, "oauthbearer", OAUTHBEARER, false},
		{"override not offered", []string{"XOAUTH2"}, "OAUTHBEARER", "", true},
		{"override not oauth", []string{"PLAIN"}, "PLAIN", "", true},
		{"nothing usable", []string{"PLAIN", "LOGIN"}, "", "", true},
		{"nothing offered", nil, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Choose(tt.offered, tt.prefer)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Choose() err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrNoMechanism) {
				t.Errorf("err = %v, want ErrNoMechanism", err)
			}
			if got != tt.want {
				t.Errorf("Choose() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClientErrorChallenge(t *testing.T) {
	tests := []struct {
		name      string
		client    Client
		challenge string
		wantResp  []byte
		want      AuthError
	}{
		{"xoauth2 gmail", NewXOAUTH2Client(Options{User: "u", Token: "secret-token"}),
			`{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}`, []byte{},
			AuthError{Mechanism: XOAUTH2, Status: "401", Schemes: "bearer mac", Scope: "https://mail.google.com/"}},
		{"xoauth2 dovecot", NewXOAUTH2Client(Options{User: "u", Token: "secret-token"}),
			`{"status":"401","schemes":"bearer","scope":"mail"}`, []byte{},
			AuthError{Mechanism: XOAUTH2, Status: "401", Schemes: "bearer", Scope: "mail"}},
		{"oauthbearer dovecot", NewOAuthBearerClient(Options{User: "u", Token: "secret-token"}),
			`{"status":"invalid_token"}`, []byte{1},
			AuthError{Mechanism: OAUTHBEARER, Status: "invalid_token"}},
		{"oauthbearer rfc 7628 example", NewOAuthBearerClient(Options{User: "u", Token: "secret-token"}),
			`{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}`, []byte{1},
			AuthError{Mechanism: OAUTHBEARER, Status: "invalid_token", Scope: "example_scope", OpenIDConfiguration: "https://example.com/.well-known/openid-configuration"}},
		{"numeric status", NewXOAUTH2Client(Options{User: "u", Token: "secret-token"}),
			`{"status":401}`, []byte{}, AuthError{Mechanism: XOAUTH2, Status: "401"}},
		{"not json", NewXOAUTH2Client(Options{User: "u", Token: "secret-token"}),
			`go away`, []byte{}, AuthError{Mechanism: XOAUTH2, Challenge: "go away"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Next([]byte(tt.challenge))
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if resp == nil || string(resp) != string(tt.wantResp) {
				t.Errorf("response = %#v, want %#v (non-nil)", resp, tt.wantResp)
			}
			if diff := cmp.Diff(&tt.want, tt.client.Failure()); diff != "" {
				t.Errorf("Failure() (-want +got):\n%s", diff)
			}
			if _, err := tt.client.Next([]byte("x")); err == nil {
				t.Error("second challenge accepted, want an error")
			}
			final := errors.New("NO [AUTHENTICATIONFAILED] Authentication failed.")
			got := Result(tt.client, final)
			var ae *AuthError
			if !errors.As(got, &ae) || !errors.Is(got, final) {
				t.Fatalf("Result = %v, want *AuthError wrapping the final error", got)
			}
			if strings.Contains(got.Error(), "secret-token") {
				t.Errorf("error leaks the token: %v", got)
			}
		})
	}
}

func TestClientEmptyChallengeResendsInitialResponse(t *testing.T) {
	c := NewXOAUTH2Client(Options{User: "u", Token: "t"})
	_, ir, _ := c.Start()
	resp, err := c.Next([]byte{})
	if err != nil || string(resp) != string(ir) {
		t.Fatalf("Next(empty) = %q, %v; want the initial response", resp, err)
	}
	if c.Failure() != nil {
		t.Error("empty challenge recorded as failure")
	}
	// A second empty challenge is an error challenge without content.
	if resp, _ := c.Next([]byte{}); resp == nil || len(resp) != 0 {
		t.Errorf("second Next(empty) = %#v, want empty ack", resp)
	}
	if c.Failure() == nil {
		t.Error("second empty challenge not recorded")
	}
}

func TestResultWithoutChallenge(t *testing.T) {
	c := NewXOAUTH2Client(Options{User: "u", Token: "t"})
	if err := Result(c, nil); err != nil {
		t.Errorf("Result(nil) = %v", err)
	}
	plain := errors.New("NO [UNAVAILABLE] Temporary authentication failure.")
	if err := Result(c, plain); err != plain {
		t.Errorf("Result = %v, want the error unchanged", err)
	}
}

func TestNew(t *testing.T) {
	for _, m := range []string{"xoauth2", "OAUTHBEARER"} {
		c, err := New(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if mech, _, _ := c.Start(); mech != strings.ToUpper(m) {
			t.Errorf("New(%q) mech = %q", m, mech)
		}
	}
	if _, err := New("PLAIN", Options{}); !errors.Is(err, ErrNoMechanism) {
		t.Errorf("New(PLAIN) err = %v", err)
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add([]byte(`{"status":"invalid_token"}`))
	f.Add([]byte(`{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}`))
	f.Add([]byte(`{"status":401}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, challenge []byte) {
		for _, c := range []Client{NewXOAUTH2Client(Options{}), NewOAuthBearerClient(Options{})} {
			c.Next([]byte{}) // use up the "resend initial response" step
			if _, err := c.Next(challenge); err != nil {
				t.Fatalf("Next: %v", err)
			}
			e := c.Failure()
			if e == nil {
				t.Fatal("no failure recorded")
			}
			if len(e.Challenge) > maxChallengeKept || len(e.Status) > maxChallengeKept || !utf8.ValidString(e.Challenge) {
				t.Fatalf("kept too much: %d", len(e.Challenge))
			}
			_ = e.Error()
		}
	})
}
