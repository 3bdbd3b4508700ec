package mailclient_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/mailclient"
)

func ExampleParseURL() {
	for _, u := range []string{"imaps://outlook.office365.com", "smtp://smtp.office365.com", "pop3+insecure://127.0.0.1:1110"} {
		srv, err := mailclient.ParseURL(u)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(srv.Protocol, srv.Security, srv.Addr())
	}
	_, err := mailclient.ParseURL("imap+insecure://mail.example.com")
	fmt.Println(err)
	// Output:
	// imap TLS outlook.office365.com:993
	// smtp STARTTLS smtp.office365.com:587
	// pop3 plain text 127.0.0.1:1110
	// mail server url "imap+insecure://mail.example.com": plain-text mail connections are allowed to loopback addresses only
}

// A check prints one line per step; on failure the last step carries the
// server's reply and a hint.
func ExampleCheckIMAP() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, _ := mailclient.ParseURL("imaps://outlook.office365.com")
	tlsConf, _ := mailclient.TLSConfig("") // or the account's ca_file
	rep, err := mailclient.CheckIMAP(ctx, srv, mailclient.Options{
		User:      "shared@contoso.com", // a shared mailbox, with the delegate's token
		Token:     os.Getenv("TOKEN"),
		TLSConfig: tlsConf,
	})
	fmt.Print(rep)
	if err != nil {
		os.Exit(1)
	}
}

func ExampleSend() {
	ctx := context.Background()
	srv, _ := mailclient.ParseURL("smtp://smtp.office365.com")
	att, err := mailclient.AttachFile("report.pdf")
	if err != nil {
		fmt.Println(err)
		return
	}
	msg := &mailclient.Message{
		To:          []string{"bob@contoso.com"},
		Subject:     "Monthly report",
		Body:        strings.NewReader("Attached.\n"),
		Attachments: []mailclient.Attachment{att},
	}
	rep, err := mailclient.Send(ctx, srv, mailclient.Options{User: "me@contoso.com", Token: os.Getenv("TOKEN")}, msg)
	fmt.Print(rep, err)
}
