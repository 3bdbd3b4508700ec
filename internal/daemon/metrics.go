package daemon

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/mailoauth/mailoauth/tokens"
)

// The metrics use github.com/VictoriaMetrics/metrics rather than
// prometheus/client_golang because this package is linked into every
// mailoauth process, and `mailoauth token` runs on each mail-client
// connection: client_golang (with procfs, client_model and protobuf) cost
// ~0.5-0.7 ms of package init on every start (GODEBUG=inittrace=1, a ~4 ms
// process), VictoriaMetrics/metrics ~0.04 ms (both also pull in
// runtime/metrics, ~0.07 ms), although only `mailoauth serve` with
// [serve] metrics ever serves them. The exposition is the same Prometheus
// text: names, labels, types and help as before.

// Label names and values are fixed by the code or come from the config
// (account names), so they are escaped here as the text format asks.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// series renders name{k1="v1",...} from key, value pairs, in the order
// given (callers pass the keys sorted, as Prometheus clients print them).
func series(name string, kv ...string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		labelEscaper.WriteString(&b, kv[i+1])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// family is one metric family of the exposition: its HELP and TYPE lines
// are written (once) before its samples, and not at all while it has none,
// as client_golang did for vectors without children.
type family struct {
	name, help, typ string
	write           func(w io.Writer)
}

// metrics are the daemon's Prometheus series, on private sets (never the
// library's global one): only what is defined here is exposed (no Go
// runtime or process series), and two daemons in one test process do not
// collide. Each counter family has its own set so that its HELP and TYPE
// lines can precede its samples: the library writes a set's samples
// without help text.
type metrics struct {
	refreshes *vm.Set // mailoauth_refresh_total{account,resource}
	errors    *vm.Set // mailoauth_refresh_errors_total{account,kind,resource}
	requests  *vm.Set // mailoauth_socket_requests_total{outcome}
	latency   *histogram
	families  []family
}

func newMetrics(s *scheduler) *metrics {
	m := &metrics{
		refreshes: vm.NewSet(),
		errors:    vm.NewSet(),
		requests:  vm.NewSet(),
		latency: newHistogram("mailoauth_refresh_duration_seconds",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}),
	}
	gauge := func(name string, value func(JobStatus) (float64, bool)) func(io.Writer) {
		return func(w io.Writer) {
			for _, st := range s.statuses() { // sorted by account, resource
				if v, ok := value(st); ok {
					vm.WriteGaugeFloat64(w, series(name, "account", st.Account, "resource", st.Resource), v)
				}
			}
		}
	}
	m.families = []family{
		{"mailoauth_refresh_duration_seconds", "Duration of the daemon's scheduled refreshes (store, lease and token endpoint).", "histogram", m.latency.write},
		{"mailoauth_refresh_errors_total", "Failed refreshes; kind is error (retried) or relogin (the refresh token was refused).", "counter", m.errors.WritePrometheus},
		{"mailoauth_refresh_total", "Access tokens obtained from the token endpoint.", "counter", m.refreshes.WritePrometheus},
		{"mailoauth_relogin_required", "1 while the account's refresh token is refused and a login is needed.", "gauge",
			gauge("mailoauth_relogin_required", func(st JobStatus) (float64, bool) {
				if st.ReloginRequired {
					return 1, true
				}
				return 0, true
			})},
		{"mailoauth_socket_requests_total", "Token requests answered on the daemon socket, by outcome.", "counter", m.requests.WritePrometheus},
		{"mailoauth_token_expiry_seconds", "Seconds until the cached access token expires (negative: expired).", "gauge",
			gauge("mailoauth_token_expiry_seconds", func(st JobStatus) (float64, bool) {
				return time.Until(st.Expiry).Seconds(), !st.Expiry.IsZero()
			})},
		{"mailoauth_token_next_refresh_seconds", "Seconds until the daemon next asks the refresh engine for the token.", "gauge",
			gauge("mailoauth_token_next_refresh_seconds", func(st JobStatus) (float64, bool) {
				return time.Until(st.NextRefresh).Seconds(), !st.NextRefresh.IsZero()
			})},
	}
	return m
}

// event counts a refresh outcome reported by the refresh engine.
func (m *metrics) event(e tokens.Event) {
	switch e.Type {
	case tokens.EventRefreshed:
		m.refreshes.GetOrCreateCounter(series("mailoauth_refresh_total", "account", e.Account, "resource", e.Resource)).Inc()
	case tokens.EventError:
		m.errors.GetOrCreateCounter(series("mailoauth_refresh_errors_total", "account", e.Account, "kind", "error", "resource", e.Resource)).Inc()
	case tokens.EventRelogin:
		m.errors.GetOrCreateCounter(series("mailoauth_refresh_errors_total", "account", e.Account, "kind", "relogin", "resource", e.Resource)).Inc()
	}
}

// refreshed records the duration of a scheduled call that brought a new
// token (the first look at a job, answered from the store, is not one).
func (m *metrics) refreshed(k jobKey, d time.Duration) {
	m.latency.observe(k.Account, k.Resource, d.Seconds())
}

// request counts one socket request by outcome.
func (m *metrics) request(outcome string) {
	m.requests.GetOrCreateCounter(series("mailoauth_socket_requests_total", "outcome", outcome)).Inc()
}

// writeTo renders every family as Prometheus text (format 0.0.4), in name
// order.
func (m *metrics) writeTo(w io.Writer) {
	var samples bytes.Buffer
	for _, f := range m.families {
		samples.Reset()
		f.write(&samples)
		if samples.Len() == 0 {
			continue
		}
		io.WriteString(w, "# HELP "+f.name+" "+f.help+"\n# TYPE "+f.name+" "+f.typ+"\n")
		w.Write(samples.Bytes())
	}
}

// histogram is a Prometheus histogram with fixed upper bounds ("le"
// buckets) and the labels account and resource. It is written here
// because the library's Histogram (v1.35.1) exposes VictoriaMetrics'
// own log-scale "vmrange" buckets, which PromQL's histogram_quantile does
// not understand; these series stay what client_golang exposed.
type histogram struct {
	name   string
	bounds []float64 // ascending

	mu     sync.Mutex
	series map[[2]string]*histSeries // by account, resource
}

type histSeries struct {
	buckets []uint64 // cumulative: observations <= bounds[i]
	count   uint64
	sum     float64
}

func newHistogram(name string, bounds []float64) *histogram {
	return &histogram{name: name, bounds: bounds, series: map[[2]string]*histSeries{}}
}

func (h *histogram) observe(account, resource string, v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]string{account, resource}
	s := h.series[k]
	if s == nil {
		s = &histSeries{buckets: make([]uint64, len(h.bounds))}
		h.series[k] = s
	}
	for i, b := range h.bounds {
		if v <= b {
			s.buckets[i]++
		}
	}
	s.count++
	s.sum += v
}

func (h *histogram) write(w io.Writer) {
	h.mu.Lock()
	keys := make([][2]string, 0, len(h.series))
	for k := range h.series {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	var b bytes.Buffer
	for _, k := range keys {
		s := h.series[k]
		for i, le := range h.bounds {
			line(&b, series(h.name+"_bucket", "account", k[0], "resource", k[1], "le", strconv.FormatFloat(le, 'g', -1, 64)), strconv.FormatUint(s.buckets[i], 10))
		}
		line(&b, series(h.name+"_bucket", "account", k[0], "resource", k[1], "le", "+Inf"), strconv.FormatUint(s.count, 10))
		line(&b, series(h.name+"_sum", "account", k[0], "resource", k[1]), strconv.FormatFloat(s.sum, 'g', -1, 64))
		line(&b, series(h.name+"_count", "account", k[0], "resource", k[1]), strconv.FormatUint(s.count, 10))
	}
	h.mu.Unlock()
	w.Write(b.Bytes())
}

func line(b *bytes.Buffer, series, value string) {
	b.WriteString(series)
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
}

// metricsHandler serves the daemon's metrics at GET /metrics.
func (d *Daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		d.metrics.writeTo(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		if _, err := w.Write(b.Bytes()); err != nil {
			d.log.Debug("metrics: write reply", "err", err)
		}
	})
	return mux
}
