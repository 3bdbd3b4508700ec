package graph_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

func ExampleClient_ListMessages() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := graph.New(&http.Client{Timeout: 30 * time.Second}, graph.StaticToken(os.Getenv("GRAPH_TOKEN")))
	// An app-only token must name the mailbox; a delegated one may use graph.Me.
	msgs, err := c.ListMessages(ctx, graph.User("shared@contoso.com"), graph.ListOptions{
		Folder: "inbox", Top: 50, Select: []string{"subject", "from", "receivedDateTime"}, Limit: 200,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range msgs {
		fmt.Println(m.ReceivedDateTime.Format(time.DateTime), m.Subject)
	}
}
