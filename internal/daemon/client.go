package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// ErrNoDaemon matches the Client's errors when no daemon answers on the
// socket (no socket file, nobody listening, connect timeout) or the one
// answering serves another config file: the caller should then read the
// store itself.
var ErrNoDaemon = errors.New("no mailoauth daemon")

// Client asks a running daemon for tokens over its socket. The zero value
// with Socket set is ready; it keeps no connection open between calls.
type Client struct {
	Socket string
	// Config is the caller's config file; a daemon serving another one
	// answers as if absent (ErrNoDaemon). "" skips the check.
	Config string
	// ConnectTimeout bounds connecting to the socket. Default 200ms: a
	// live daemon accepts at once, and a hung one must not delay the mail
	// client's fallback to the store by more.
	ConnectTimeout time.Duration
	// Timeout bounds the whole exchange; a daemon that accepts but does not
	// answer in time counts as absent (ErrNoDaemon), so a hung daemon
	// cannot hang every mail client. Default 90 seconds: a refresh the
	// daemon does for the caller may wait on a slow token endpoint.
	Timeout time.Duration
}

// Token returns the access token of account for resource ("imap", "smtp",
// "graph"…) and the account's mailbox (SASL user; "" if unknown). Errors:
// ErrNoDaemon when nobody answers; a *tokens.ReloginError (matching
// tokens.ErrReloginRequired) when the account needs a login; one matching
// config.ErrNoAccount when the daemon does not know the account.
func (c *Client) Token(ctx context.Context, account, resource string) (*oauth.Token, string, error) {
	q := url.Values{"account": {account}, "resource": {resource}}
	if c.Config != "" {
		q.Set("config", c.Config)
	}
	var rep TokenReply
	if err := c.get(ctx, "/v1/token?"+q.Encode(), &rep); err != nil {
		return nil, "", err
	}
	if rep.AccessToken == "" {
		return nil, "", errors.New("daemon: reply without an access token")
	}
	tok := &oauth.Token{AccessToken: rep.AccessToken, TokenType: rep.TokenType, Expiry: rep.Expiry, Scope: rep.Scope}
	return tok, rep.User, nil
}

// Status returns the daemon's view of its accounts and schedules.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.get(ctx, "/v1/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (c *Client) get(ctx context.Context, path string, into any) error {
	if c.Socket == "" {
		return fmt.Errorf("%w: no socket path", ErrNoDaemon)
	}
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 200 * time.Millisecond
	}
	conn, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return fmt.Errorf("daemon: %w on %s: %w", ErrNoDaemon, c.Socket, err)
	}
	defer conn.Close()
	total := c.Timeout
	if total <= 0 {
		total = 90 * time.Second
	}
	conn.SetDeadline(time.Now().Add(total))
	// One request per process, on one connection: http.Transport's pool
	// and its reader and writer goroutines would cost more than the
	// request itself on this path (every mail client connection), so the
	// request is written and the answer read with net/http's own framing
	// directly on the connection. ctx ends the exchange by a past deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// The host is a placeholder: the connection is the socket.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://mailoauth"+path, nil)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	req.Close = true
	resp, err := roundTrip(conn, req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("daemon: %w", ctx.Err())
		}
		// No answer (the daemon closed the connection while shutting
		// down): the request is a read, so the caller can safely do it
		// from the store instead.
		return fmt.Errorf("daemon: %w: %w", ErrNoDaemon, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("daemon: read the reply: %w", err)
	}
	return decodeReply(resp.StatusCode, body, into)
}

func roundTrip(conn net.Conn, req *http.Request) (*http.Response, error) {
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReader(conn), req)
}

// decodeReply reads a daemon's answer: into on 200, else the error it
// carries. The daemon is the user's own process, but its answer is still
// parsed defensively (FuzzDecodeReply).
func decodeReply(status int, body []byte, into any) error {
	if status != http.StatusOK {
		var er ErrorReply
		if json.Unmarshal(body, &er) != nil || er.Error == "" {
			return fmt.Errorf("daemon: HTTP %d", status)
		}
		return replyError(er)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("daemon: malformed reply: %w", err)
	}
	return nil
}

// replyError turns an ErrorReply back into the error the store path would
// have given, so the CLI maps it onto the same exit code.
func replyError(er ErrorReply) error {
	switch er.Error {
	case CodeReloginRequired:
		cmd := er.Command
		if cmd == "" {
			cmd = tokens.LoginCommand(er.Account)
		}
		return &tokens.ReloginError{Account: er.Account, Reason: er.Reason, Command: cmd}
	case CodeUnknownAccount:
		return fmt.Errorf("daemon: %w: %s", config.ErrNoAccount, er.Message)
	case CodeOtherConfig:
		return fmt.Errorf("%w: %s", ErrNoDaemon, er.Message)
	}
	return fmt.Errorf("daemon: %s", er.Message)
}
