package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/tokens"
)

// TokenReply is the body of a successful GET /v1/token.
type TokenReply struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	Scope       []string  `json:"scope,omitempty"`
	// User is the account's mailbox, the SASL user name ("" if unknown), so
	// `mailoauth token --sasl` needs nothing from the store.
	User string `json:"user,omitempty"`
}

// Error codes of an ErrorReply.
const (
	CodeBadRequest      = "bad_request"      // a parameter is missing or wrong
	CodeUnknownAccount  = "unknown_account"  // no such account in the daemon's config
	CodeReloginRequired = "relogin_required" // an interactive login is needed
	CodeRefreshFailed   = "refresh_failed"   // any other failure; retried later
	CodeOtherConfig     = "other_config"     // the daemon serves another config file
)

// ErrorReply is the body of every failed request. It never holds a token.
type ErrorReply struct {
	Error   string `json:"error"` // one of the Code* constants
	Message string `json:"message"`
	Account string `json:"account,omitempty"`
	// Reason and Command are set for relogin_required.
	Reason  string `json:"reason,omitempty"`
	Command string `json:"command,omitempty"`
}

// Status is the body of GET /v1/status.
type Status struct {
	PID     int         `json:"pid"`
	Started time.Time   `json:"started"`
	Socket  string      `json:"socket"`
	Metrics string      `json:"metrics,omitempty"`
	Jobs    []JobStatus `json:"jobs"`
	// Accounts are what `mailoauth status --json` shows, one per account.
	Accounts []json.RawMessage `json:"accounts"`
}

func (d *Daemon) handler(acc Accounts) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/token", func(w http.ResponseWriter, r *http.Request) { d.serveToken(w, r, acc) })
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { d.serveStatus(w, r, acc) })
	return mux
}

func (d *Daemon) serveToken(w http.ResponseWriter, r *http.Request, acc Accounts) {
	q := r.URL.Query()
	name, resource := q.Get("account"), q.Get("resource")
	if resource == "" {
		resource = "imap"
	}
	// A `mailoauth --config other.toml token` must not get a token of the
	// same-named account of the daemon's config.
	if c := q.Get("config"); c != "" && d.opts.ConfigFile != "" && c != d.opts.ConfigFile {
		d.metrics.request(CodeOtherConfig)
		writeJSON(w, http.StatusConflict, ErrorReply{Error: CodeOtherConfig, Message: "the daemon serves " + d.opts.ConfigFile + ", not " + c})
		return
	}
	if name == "" {
		d.metrics.request("bad_request")
		writeJSON(w, http.StatusBadRequest, ErrorReply{Error: CodeBadRequest, Message: "the account parameter is required"})
		return
	}
	// The caller's wait is bounded; a refresh it started goes on for the
	// others (the engine detaches it).
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	tok, _, err := acc.Token(ctx, name, resource)
	if err != nil {
		status, rep := errorReply(name, err)
		d.metrics.request(rep.Error)
		if rep.Error == CodeRefreshFailed || rep.Error == CodeBadRequest {
			d.log.Info("token request failed", "account", name, "resource", resource, "err", err)
		}
		writeJSON(w, status, rep)
		return
	}
	d.metrics.request("ok")
	writeJSON(w, http.StatusOK, TokenReply{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Expiry: tok.Expiry,
		Scope: tok.Scope, User: acc.User(name)})
}

// errorReply maps an account error onto the wire.
func errorReply(name string, err error) (int, ErrorReply) {
	rep := ErrorReply{Message: err.Error(), Account: name}
	var re *tokens.ReloginError
	switch {
	case errors.As(err, &re):
		rep.Error, rep.Reason, rep.Command = CodeReloginRequired, re.Reason, re.Command
		return http.StatusUnauthorized, rep
	case errors.Is(err, tokens.ErrReloginRequired):
		rep.Error, rep.Command = CodeReloginRequired, tokens.LoginCommand(name)
		return http.StatusUnauthorized, rep
	case errors.Is(err, config.ErrNoAccount):
		rep.Error = CodeUnknownAccount
		return http.StatusNotFound, rep
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		rep.Error = CodeRefreshFailed
		return http.StatusServiceUnavailable, rep
	}
	rep.Error = CodeRefreshFailed
	return http.StatusBadGateway, rep
}

func (d *Daemon) serveStatus(w http.ResponseWriter, r *http.Request, acc Accounts) {
	st := Status{PID: os.Getpid(), Started: d.started, Socket: d.opts.Socket, Metrics: d.MetricsAddr(),
		Jobs: d.sched.statuses(), Accounts: []json.RawMessage{}}
	for _, name := range acc.Names() {
		s, err := acc.Status(r.Context(), name)
		if err != nil {
			s = map[string]string{"account": name, "error": err.Error()}
		}
		b, err := json.Marshal(s)
		if err != nil {
			continue
		}
		st.Accounts = append(st.Accounts, b)
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
