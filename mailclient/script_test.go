package mailclient

import (
	"crypto/tls"
	"testing"

	"github.com/mailoauth/mailoauth/internal/testenv/script"
)

// step is one exchange of the scripted server (internal/testenv/script):
// "<tls>" in Send starts server-side TLS; Expect "<data>" reads a DATA body.
type step = script.Step

func scriptServer(t *testing.T, steps []step, tlsConf *tls.Config) (string, <-chan script.Result) {
	t.Helper()
	return script.Serve(t, steps, tlsConf)
}

func expected(steps []step) []string { return script.Expected(steps) }

func mustURL(t *testing.T, scheme, addr string) Server {
	t.Helper()
	s, err := ParseURL(scheme + "://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stepNames(r *Report) []string {
	var out []string
	for _, s := range r.Steps {
		name := s.Name
		if !s.OK {
			name += "!"
		}
		out = append(out, name)
	}
	return out
}
