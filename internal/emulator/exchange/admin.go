package exchange

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// The admin API of the mail side, JSON under /_exchange/ on the Graph
// listener, so that another process (the CLI's tests, a shell script) can
// look into mailboxes and seed them. The switches (oauthbearer,
// graph_throttle, SMTP AUTH, delegates, service principals) are the
// emulator core's, under /_emulator/ on the identity listener.
//
//	GET  /_exchange/messages?mailbox=&folder=  message summaries, newest first
//	POST /_exchange/deliver?mailbox=           raw RFC 5322 body into INBOX
//	GET  /_exchange/outbound                   mail sent outside the emulator

// MessageSummary is one message as the admin API lists it.
type MessageSummary struct {
	// ID is the Graph id; Folder the well-known folder name; Size the raw
	// message's bytes; the rest are its headers and arrival time.
	ID       string    `json:"id"`
	Folder   string    `json:"folder"`
	Subject  string    `json:"subject"`
	From     string    `json:"from"`
	To       []string  `json:"to"`
	Received time.Time `json:"received"`
	Size     int       `json:"size"`
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_exchange/messages", func(w http.ResponseWriter, r *http.Request) {
		mb := r.URL.Query().Get("mailbox")
		if _, ok := s.mailbox(mb); !ok {
			writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "no mailbox " + mb})
			return
		}
		out := []MessageSummary{}
		for _, m := range s.Messages(mb, r.URL.Query().Get("folder")) {
			var to []string
			for _, a := range m.To {
				to = append(to, a.Address)
			}
			out = append(out, MessageSummary{ID: m.ID, Folder: m.Folder, Subject: m.Subject, From: m.From.Address,
				To: to, Received: m.Received, Size: len(m.Raw)})
		}
		writeAdminJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /_exchange/deliver", func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxSMTPMessage))
		if err != nil {
			writeAdminJSON(w, http.StatusBadRequest, map[string]string{"error": "read body"})
			return
		}
		if err := s.Deliver(r.URL.Query().Get("mailbox"), raw); err != nil {
			writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_exchange/outbound", func(w http.ResponseWriter, r *http.Request) {
		type out struct {
			From string `json:"from"`
			To   string `json:"to"`
			Size int    `json:"size"`
		}
		list := []out{}
		for _, m := range s.Outbound() {
			list = append(list, out{m.From, m.To, len(m.Raw)})
		}
		writeAdminJSON(w, http.StatusOK, list)
	})
	return mux
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func readAdminJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeAdminJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + strings.TrimPrefix(err.Error(), "json: ")})
		return false
	}
	return true
}
