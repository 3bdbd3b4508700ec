package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ServerOptions configure Start.
type ServerOptions struct {
	Options
	// Listen is the address to serve on; default "127.0.0.1:0". Only
	// loopback addresses are accepted.
	Listen string
	// PlainHTTP serves http:// instead of https:// (MSAL refuses http
	// authorities; other clients may want it).
	PlainHTTP bool
}

// Service is one listening service, as the CLI prints it. Later issues add
// IMAP, POP3, SMTP and Graph listeners to the same list.
type Service struct {
	Name string `json:"name"` // "identity", later "imap", "pop3", "smtp", "graph"
	URL  string `json:"url"`  // e.g. https://127.0.0.1:8443
}

// Server is a running emulator: the HTTP(S) listener plus its CA.
type Server struct {
	*Emulator
	// URL is the base URL, e.g. https://127.0.0.1:41234 (no trailing slash).
	URL string

	ca      *x509.Certificate
	caPEM   []byte
	pool    *x509.CertPool
	tlsCert tls.Certificate
	ln      net.Listener
	srv     *http.Server
	done    chan struct{}

	svcMu    sync.Mutex
	services []Service
}

// Start builds an emulator and serves it on a loopback listener: HTTPS with
// a freshly generated CA unless PlainHTTP. Close it when done.
func Start(opts ServerOptions) (*Server, error) {
	e, err := New(opts.Options)
	if err != nil {
		return nil, err
	}
	addr := opts.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	addr, err = LoopbackAddr(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Emulator: e, done: make(chan struct{})}
	if err := s.makeCerts(e.now()); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	scheme := "http"
	if !opts.PlainHTTP {
		ln = tls.NewListener(ln, s.TLSConfig())
		scheme = "https"
	}
	s.ln = ln
	s.URL = scheme + "://" + ln.Addr().String()
	s.services = []Service{{Name: "identity", URL: s.URL}}
	s.srv = &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second,
		// TLS handshake failures (a client without the CA) are routine here.
		ErrorLog: slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug)}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.logger.Error("emulator serve", "error", err)
		}
	}()
	return s, nil
}

// LoopbackAddr checks a listen address and returns it with "localhost"
// spelled 127.0.0.1, so the listener never lands on ::1 or another address
// the resolver maps localhost to. Anything but an IPv4 loopback address is
// refused: the emulator hands out tokens for anyone who asks and must not be
// reachable from the network. The Exchange servers use it too.
func LoopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w (use 127.0.0.1:PORT)", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return "", fmt.Errorf("listen address %q: the emulator listens on 127.0.0.1 only", addr)
	}
	return addr, nil
}

// makeCerts generates the CA and the server certificate. The server
// certificate names 127.0.0.1, localhost and every Microsoft host the
// emulator answers for (TLSHostNames), so a client that dials loopback for
// login.microsoftonline.com still verifies it against the CA.
func (s *Server) makeCerts(now time.Time) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mailoauth emulator CA", Organization: []string{"mailoauth"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parse CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "mailoauth emulator"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     TLSHostNames(),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create server certificate: %w", err)
	}
	s.ca = ca
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	s.pool = x509.NewCertPool()
	s.pool.AddCert(ca)
	s.tlsCert = tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// CAPEM returns the CA certificate in PEM, for --ca-out and clients.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CAPool returns a pool holding only the emulator's CA.
func (s *Server) CAPool() *x509.CertPool { return s.pool }

// TLSConfig returns a server TLS config with the emulator's certificate, so
// the later mail listeners can serve under the same CA.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{s.tlsCert}, MinVersion: tls.VersionTLS12}
}

// HTTPClient returns a client that trusts the emulator's CA (and nothing
// else) and dials hosts normally: use it with s.URL.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
	}}
}

// RedirectingHTTPClient returns a client that trusts the emulator's CA and
// dials the emulator's loopback listener whatever host a URL names, so a
// client can use the real authority (https://login.microsoftonline.com/…)
// and get the matching cloud's behaviour.
func (s *Server) RedirectingHTTPClient() *http.Client {
	addr := s.ln.Addr().String()
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// Services lists what this server listens on, one entry per service.
func (s *Server) Services() []Service {
	s.svcMu.Lock()
	defer s.svcMu.Unlock()
	return append([]Service(nil), s.services...)
}

// AddService records another listener (for the mail and Graph servers of
// later issues), so the CLI prints it.
func (s *Server) AddService(name, url string) {
	s.svcMu.Lock()
	s.services = append(s.services, Service{Name: name, URL: url})
	s.svcMu.Unlock()
}

// Close stops the listener and waits for the serve loop to end.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	if err != nil && !strings.Contains(err.Error(), "closed") {
		return fmt.Errorf("close emulator: %w", err)
	}
	return nil
}
