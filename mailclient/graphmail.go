package mailclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailoauth/mailoauth/graph"
)

// Graph is the pseudo-protocol of reports made by CheckGraph and SendGraph.
const Graph Protocol = "graph"

// CheckGraph checks Graph mail access the way CheckIMAP checks IMAP: it
// lists the newest message of mb's inbox (and Options.Recent of them when
// set). The token lives in c; opts.User only labels the report.
func CheckGraph(ctx context.Context, c *graph.Client, mb graph.Mailbox, opts Options) (*Report, error) {
	rec := newGraphRecorder(c, mb, opts)
	n := max(opts.Recent, 1)
	msgs, err := c.ListMessages(ctx, mb, graph.ListOptions{
		Folder: "inbox", Top: n, Limit: n,
		Select: []string{"subject", "from", "receivedDateTime", "internetMessageId"},
	})
	if err != nil {
		return rec.rep, rec.failGraph("list", "could not list the inbox of "+mb.String(), err)
	}
	rec.ok("list", fmt.Sprintf("listed the inbox of %s (%d newest messages read)", mb, len(msgs)))
	if opts.Recent > 0 {
		for _, m := range msgs {
			s := Summary{ID: m.ID, Subject: m.Subject, Date: m.ReceivedDateTime, MessageID: trimAngles(m.InternetMessageID)}
			if m.From != nil {
				s.From = m.From.EmailAddress.Address
			}
			rec.rep.Messages = append(rec.rep.Messages, s)
		}
	}
	return rec.rep, nil
}

// SendGraph sends msg through Graph as mb (graph.Client.SendMail: one
// sendMail under 4 MB, else a draft with chunked attachment uploads), so
// `send --via graph` takes the same Message as Send. From is ignored: Graph
// sends as mb.
func SendGraph(ctx context.Context, c *graph.Client, mb graph.Mailbox, opts Options, msg *Message) (*Report, error) {
	rec := newGraphRecorder(c, mb, opts)
	gm := &graph.Message{Subject: msg.Subject, To: msg.To, Cc: msg.Cc, Bcc: msg.Bcc}
	if msg.Body != nil {
		// Graph takes the body inline in JSON; cap it like its 4 MB limit.
		b, err := io.ReadAll(io.LimitReader(msg.Body, 4<<20+1))
		if err != nil {
			return rec.rep, rec.fail("message", "could not read the body", err)
		}
		if len(b) > 4<<20 {
			return rec.rep, rec.fail("message", "body too large for Graph sendMail", errors.New("body over 4 MB"))
		}
		gm.Body = string(b)
	}
	for _, a := range msg.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = DetectContentType(a.Name, a.Data)
		}
		gm.Attachments = append(gm.Attachments, graph.Attachment{Name: a.Name, ContentType: ct, Data: a.Data})
	}
	for _, list := range [][]string{gm.To, gm.Cc, gm.Bcc} {
		for i, r := range list {
			a, err := parseAddrs([]string{r})
			if err != nil {
				return rec.rep, rec.fail("message", "bad recipient", err)
			}
			list[i] = a[0].Address
		}
	}
	if err := c.SendMail(ctx, mb, gm); err != nil {
		return rec.rep, rec.failGraph("send", "Graph did not accept the message", err)
	}
	rec.ok("send", fmt.Sprintf("accepted by Graph (202) for %d recipients", len(gm.To)+len(gm.Cc)+len(gm.Bcc)))
	return rec.rep, nil
}

func newGraphRecorder(c *graph.Client, mb graph.Mailbox, opts Options) *recorder {
	base := c.BaseURL
	if base == "" {
		base = graph.DefaultBaseURL
	}
	rec := newRecorder(Server{Protocol: Graph}, opts)
	rec.rep.Server = strings.TrimSuffix(base, "/") + mb.String()
	rec.log = rec.log.With("server", rec.rep.Server)
	return rec
}

// failGraph is fail with Graph's status line as the reply and its hint.
func (r *recorder) failGraph(name, detail string, err error) error {
	werr := r.fail(name, detail, err)
	var ge *graph.Error
	if errors.As(err, &ge) {
		s := &r.rep.Steps[len(r.rep.Steps)-1]
		s.Reply = strings.TrimPrefix(ge.Error(), "graph: ")
		s.Hint = ge.Hint()
	}
	return werr
}
