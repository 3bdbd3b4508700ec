package mailclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mailoauth/mailoauth/sasl"
)

// errNoStartTLS refuses to log in over plain text on a STARTTLS URL.
var errNoStartTLS = errors.New("server does not offer STARTTLS")

// tlsConfig returns a copy of opts.TLSConfig for srv with ServerName set.
func tlsConfig(srv Server, opts Options) *tls.Config {
	var cfg *tls.Config
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = srv.Host
	}
	return cfg
}

// dial connects to srv, doing the TLS handshake for implicit TLS. The
// connection follows ctx: its deadline becomes the connection's, and when
// ctx ends the connection is closed (the protocol libraries reset read
// deadlines themselves, so a deadline alone would not stop them). The
// returned stop function detaches ctx from the connection.
func dial(ctx context.Context, srv Server, opts Options, rec *recorder) (net.Conn, func() bool, error) {
	if opts.User == "" {
		return nil, nil, rec.fail("connect", "no user (mailbox address) given", errors.New("no user"))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", srv.Addr())
	if err != nil {
		return nil, nil, rec.fail("connect", "could not connect to "+srv.Addr(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	rec.armGreeting(conn, opts.GreetingTimeout)
	rec.ctx = ctx
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	rec.ok("connect", "connected to "+conn.RemoteAddr().String())
	if srv.Security != ImplicitTLS {
		return conn, stop, nil
	}
	tc := tls.Client(conn, tlsConfig(srv, opts))
	if err := tc.HandshakeContext(ctx); err != nil {
		stop()
		conn.Close()
		return nil, nil, rec.fail("tls", "TLS handshake failed", err)
	}
	rec.ok("tls", tlsDetail(tc))
	return tc, stop, nil
}

func tlsDetail(tc *tls.Conn) string {
	st := tc.ConnectionState()
	d := "verified " + tls.VersionName(st.Version)
	if len(st.PeerCertificates) > 0 {
		d += ", certificate for " + st.PeerCertificates[0].Subject.CommonName
	}
	return d
}

// saslClient chooses the mechanism from what the server offers and builds
// the client.
func saslClient(srv Server, opts Options, offered []string, rec *recorder) (sasl.Client, error) {
	mech, err := sasl.Choose(offered, opts.Mechanism)
	if err != nil {
		werr := rec.fail("authenticate", "no usable OAuth mechanism", err)
		if other, oerr := sasl.Choose(offered, ""); opts.Mechanism != "" && oerr == nil {
			rec.rep.Steps[len(rec.rep.Steps)-1].Hint = "the account asks for " + strings.ToUpper(opts.Mechanism) +
				" (its sasl setting) but this server offers " + other + ": set sasl = \"auto\" or \"" + strings.ToLower(other) + "\""
		}
		return nil, werr
	}
	rec.rep.Mechanism = mech
	c, err := sasl.New(mech, sasl.Options{User: opts.User, Token: opts.Token, Host: srv.Host, Port: srv.Port})
	if err != nil {
		return nil, rec.fail("authenticate", "", err)
	}
	return c, nil
}

func authDetail(mech, user string) string {
	return fmt.Sprintf("logged in with %s as %s", mech, user)
}
