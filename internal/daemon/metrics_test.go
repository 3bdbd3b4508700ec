package daemon

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/tokens"
)

// TestMetricsExposition: the whole /metrics text for known events, byte
// for byte: HELP and TYPE once per family and only for families with
// samples, labels sorted and escaped (an account name with a quote, a
// backslash and a newline stays one valid series), cumulative le buckets.
func TestMetricsExposition(t *testing.T) {
	d, err := New(Options{Socket: "/tmp/mailoauth-unused.sock"})
	if err != nil {
		t.Fatal(err)
	}
	odd := "a\"b\\c\nd"
	d.metrics.event(tokens.Event{Type: tokens.EventRefreshed, Account: "work", Resource: "mail"})
	d.metrics.event(tokens.Event{Type: tokens.EventRefreshed, Account: "work", Resource: "mail"})
	d.metrics.event(tokens.Event{Type: tokens.EventRefreshed, Account: odd, Resource: "graph"})
	d.metrics.event(tokens.Event{Type: tokens.EventRelogin, Account: "work", Resource: "mail"})
	d.metrics.refreshed(jobKey{Account: "work", Resource: "mail"}, 30*time.Millisecond)
	d.metrics.refreshed(jobKey{Account: "work", Resource: "mail"}, 2*time.Minute)
	d.metrics.request("ok")
	d.metrics.request("ok")
	d.metrics.request("bad_request")

	want := `# HELP mailoauth_refresh_duration_seconds Duration of the daemon's scheduled refreshes (store, lease and token endpoint).
# TYPE mailoauth_refresh_duration_seconds histogram
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.005"} 0
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.01"} 0
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.025"} 0
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.05"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.1"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.25"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="0.5"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="1"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="2.5"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="5"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="10"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="30"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="60"} 1
mailoauth_refresh_duration_seconds_bucket{account="work",resource="mail",le="+Inf"} 2
mailoauth_refresh_duration_seconds_sum{account="work",resource="mail"} 120.03
mailoauth_refresh_duration_seconds_count{account="work",resource="mail"} 2
# HELP mailoauth_refresh_errors_total Failed refreshes; kind is error (retried) or relogin (the refresh token was refused).
# TYPE mailoauth_refresh_errors_total counter
mailoauth_refresh_errors_total{account="work",kind="relogin",resource="mail"} 1
# HELP mailoauth_refresh_total Access tokens obtained from the token endpoint.
# TYPE mailoauth_refresh_total counter
mailoauth_refresh_total{account="a\"b\\c\nd",resource="graph"} 1
mailoauth_refresh_total{account="work",resource="mail"} 2
# HELP mailoauth_socket_requests_total Token requests answered on the daemon socket, by outcome.
# TYPE mailoauth_socket_requests_total counter
mailoauth_socket_requests_total{outcome="bad_request"} 1
mailoauth_socket_requests_total{outcome="ok"} 2
`
	if diff := cmp.Diff(want, scrapeMetrics(t, d)); diff != "" {
		t.Errorf("/metrics (-want +got)\n%s", diff)
	}
}
