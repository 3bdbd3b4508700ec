package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailoauth/mailoauth/tokens"
)

// metrics are the daemon's Prometheus series, on a private registry: only
// what is defined here is exposed (no Go runtime series by default), and
// two daemons in one test process do not collide.
type metrics struct {
	refreshes *prometheus.CounterVec
	errors    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	requests  *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, s *scheduler) *metrics {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailoauth_refresh_total",
			Help: "Access tokens obtained from the token endpoint.",
		}, []string{"account", "resource"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailoauth_refresh_errors_total",
			Help: "Failed refreshes; kind is error (retried) or relogin (the refresh token was refused).",
		}, []string{"account", "resource", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailoauth_refresh_duration_seconds",
			Help:    "Duration of the daemon's scheduled refreshes (store, lease and token endpoint).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"account", "resource"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailoauth_socket_requests_total",
			Help: "Token requests answered on the daemon socket, by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.refreshes, m.errors, m.latency, m.requests, &expiryCollector{s: s})
	return m
}

// event counts a refresh outcome reported by the refresh engine.
func (m *metrics) event(e tokens.Event) {
	switch e.Type {
	case tokens.EventRefreshed:
		m.refreshes.WithLabelValues(e.Account, e.Resource).Inc()
	case tokens.EventError:
		m.errors.WithLabelValues(e.Account, e.Resource, "error").Inc()
	case tokens.EventRelogin:
		m.errors.WithLabelValues(e.Account, e.Resource, "relogin").Inc()
	}
}

// refreshed records the duration of a scheduled call that brought a new
// token (the first look at a job, answered from the store, is not one).
func (m *metrics) refreshed(k jobKey, d time.Duration) {
	m.latency.WithLabelValues(k.Account, k.Resource).Observe(d.Seconds())
}

// request counts one socket request by outcome.
func (m *metrics) request(outcome string) { m.requests.WithLabelValues(outcome).Inc() }

// expiryCollector reports, at scrape time, how long each scheduled token
// has left and when the daemon next refreshes it.
type expiryCollector struct{ s *scheduler }

var (
	expiryDesc = prometheus.NewDesc("mailoauth_token_expiry_seconds",
		"Seconds until the cached access token expires (negative: expired).", []string{"account", "resource"}, nil)
	nextDesc = prometheus.NewDesc("mailoauth_token_next_refresh_seconds",
		"Seconds until the daemon next asks the refresh engine for the token.", []string{"account", "resource"}, nil)
	reloginDesc = prometheus.NewDesc("mailoauth_relogin_required",
		"1 while the account's refresh token is refused and a login is needed.", []string{"account", "resource"}, nil)
)

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- nextDesc
	ch <- reloginDesc
}

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, st := range c.s.statuses() {
		if !st.Expiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, st.Expiry.Sub(now).Seconds(), st.Account, st.Resource)
		}
		if !st.NextRefresh.IsZero() {
			ch <- prometheus.MustNewConstMetric(nextDesc, prometheus.GaugeValue, st.NextRefresh.Sub(now).Seconds(), st.Account, st.Resource)
		}
		v := 0.0
		if st.ReloginRequired {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(reloginDesc, prometheus.GaugeValue, v, st.Account, st.Resource)
	}
}

// metricsHandler serves the private registry.
func (d *Daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{d}}))
	return mux
}

type slogPrinter struct{ d *Daemon }

func (p slogPrinter) Println(v ...any) { p.d.log.Warn("metrics", "err", errors.New(fmt.Sprint(v...))) }
