package mailclient

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Protocol is a mail protocol.
type Protocol string

// The protocols a Server can speak.
const (
	IMAP Protocol = "imap"
	POP3 Protocol = "pop3"
	SMTP Protocol = "smtp"
)

// Security is how a connection is protected.
type Security int

// Transport security, chosen by the URL scheme.
const (
	// ImplicitTLS starts TLS on connect (imaps, pop3s, smtps).
	ImplicitTLS Security = iota
	// StartTLS upgrades a plain connection before logging in, and refuses
	// to go on when the server does not offer it (imap, pop3, smtp).
	StartTLS
	// Insecure never uses TLS. Only allowed to loopback addresses, for
	// tests and local proxies (imap+insecure, …).
	Insecure
)

// String names the security mode as a user would read it.
func (s Security) String() string {
	switch s {
	case ImplicitTLS:
		return "TLS"
	case StartTLS:
		return "STARTTLS"
	case Insecure:
		return "plain text"
	}
	return "unknown"
}

// Server is a parsed server URL.
type Server struct {
	// Protocol and Security come from the URL's scheme.
	Protocol Protocol
	Security Security
	// Host is the name TLS verifies the certificate against.
	Host string
	// Port is the URL's, or the scheme's default.
	Port int
}

// Addr returns host:port for dialling.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL returns the canonical URL of s (with the port written out).
func (s Server) URL() string {
	scheme := string(s.Protocol)
	switch s.Security {
	case ImplicitTLS:
		scheme += "s"
	case Insecure:
		scheme += "+insecure"
	}
	return scheme + "://" + s.Addr()
}

// String returns the URL.
func (s Server) String() string { return s.URL() }

// ErrInsecureNotLoopback refuses a plain-text URL to a non-loopback host:
// sending a bearer token in clear over a network gives it away.
var ErrInsecureNotLoopback = errors.New("plain-text mail connections are allowed to loopback addresses only")

var schemes = map[string]struct {
	proto Protocol
	sec   Security
	port  int
}{
	"imaps":         {IMAP, ImplicitTLS, 993},
	"imap":          {IMAP, StartTLS, 143},
	"imap+insecure": {IMAP, Insecure, 143},
	"pop3s":         {POP3, ImplicitTLS, 995},
	"pop3":          {POP3, StartTLS, 110},
	"pop3+insecure": {POP3, Insecure, 110},
	// 465 and 587 are the submission ports (RFC 8314); port 25 is relay
	// traffic and takes no OAuth.
	"smtps":         {SMTP, ImplicitTLS, 465},
	"smtp":          {SMTP, StartTLS, 587},
	"smtp+insecure": {SMTP, Insecure, 587},
}

// URLPart names what is wrong in a server URL, for callers that word the
// problem their own way (the config file checker).
type URLPart int

// The parts ParseURL checks, in order.
const (
	URLSyntax   URLPart = iota // not a URL at all
	URLScheme                  // a scheme that is not imap(s), pop3(s), smtp(s) or +insecure
	URLExtra                   // user info, a path, a query or a fragment
	URLHost                    // no host
	URLPort                    // a port that is not 1–65535
	URLInsecure                // +insecure to a host that is not loopback
)

// URLError is ParseURL's error: the URL, the part found wrong and, for
// URLScheme and URLPort, the offending scheme or port. It wraps
// ErrInsecureNotLoopback for URLInsecure.
type URLError struct {
	URL   string
	Part  URLPart
	Value string // the scheme or the port, when Part names one
	Err   error  // the url.Parse error (URLSyntax), the bad IP (URLHost) or ErrInsecureNotLoopback
}

// Error describes the problem in words.
func (e *URLError) Error() string {
	switch e.Part {
	case URLSyntax:
		return fmt.Sprintf("mail server url: %v", e.Err)
	case URLScheme:
		return fmt.Sprintf("mail server url %q: unknown scheme %q (want imaps, imap, pop3s, pop3, smtps, smtp, or one of them with +insecure)", e.URL, e.Value)
	case URLExtra:
		return fmt.Sprintf("mail server url %q: only scheme://host[:port] is allowed", e.URL)
	case URLHost:
		if e.Err != nil {
			return fmt.Sprintf("mail server url %q: bad host: %v", e.URL, e.Err)
		}
		return fmt.Sprintf("mail server url %q: no host", e.URL)
	case URLPort:
		return fmt.Sprintf("mail server url %q: bad port %q", e.URL, e.Value)
	}
	return fmt.Sprintf("mail server url %q: %v", e.URL, e.Err)
}

// Unwrap returns the underlying error.
func (e *URLError) Unwrap() error { return e.Err }

// ParseURL parses a server URL such as "imaps://outlook.office365.com" or
// "smtp://smtp.office365.com:587". A missing port gets the scheme's default
// (993, 143, 995, 110, 465, 587). User info, paths and queries are refused
// rather than ignored, so a URL that means more than we do is not half-used.
// Its errors are *URLError. It is the one table of mail URL schemes: the
// config file's server keys are checked with it too.
func ParseURL(raw string) (Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Server{}, &URLError{URL: raw, Part: URLSyntax, Err: err}
	}
	sc, ok := schemes[strings.ToLower(u.Scheme)]
	if !ok {
		return Server{}, &URLError{URL: raw, Part: URLScheme, Value: u.Scheme}
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Server{}, &URLError{URL: raw, Part: URLExtra}
	}
	host := u.Hostname()
	if host == "" {
		return Server{}, &URLError{URL: raw, Part: URLHost}
	}
	if strings.Contains(host, ":") {
		// Only an IPv6 literal may hold colons; url.Parse lets "smtp://::"
		// through with host ":", which no dialler can use.
		if _, err := netip.ParseAddr(host); err != nil {
			return Server{}, &URLError{URL: raw, Part: URLHost, Err: err}
		}
	}
	port := sc.port
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Server{}, &URLError{URL: raw, Part: URLPort, Value: p}
		}
		port = n
	}
	if sc.sec == Insecure && !isLoopback(host) {
		return Server{}, &URLError{URL: raw, Part: URLInsecure, Value: host, Err: ErrInsecureNotLoopback}
	}
	return Server{Protocol: sc.proto, Security: sc.sec, Host: host, Port: port}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
