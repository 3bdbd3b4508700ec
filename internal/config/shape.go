package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// The file as written: what BurntSushi/toml decodes into. Only strings,
// booleans, integers, string arrays and tables appear, so checkShape below can
// tell every wrong type apart from an unknown key before decoding.
type rawFile struct {
	Store           string                 `toml:"store"`
	StorePassphrase string                 `toml:"store_passphrase"`
	Accounts        map[string]*rawAccount `toml:"accounts"`
	Proxy           map[string]*rawProxy   `toml:"proxy"`
	Serve           *rawServe              `toml:"serve"`
}

type rawAccount struct {
	Provider            string   `toml:"provider"`
	ClientID            string   `toml:"client_id"`
	ClientSecret        string   `toml:"client_secret"`
	Certificate         string   `toml:"certificate"`
	CertificatePassword string   `toml:"certificate_password"`
	AssertionAlg        string   `toml:"assertion_alg"`
	X5C                 bool     `toml:"x5c"`
	AuthMethod          string   `toml:"auth_method"`
	Flow                string   `toml:"flow"`
	Scopes              []string `toml:"scopes"`
	Email               string   `toml:"email"`
	Password            string   `toml:"password"`
	Tenant              string   `toml:"tenant"`
	Cloud               string   `toml:"cloud"`
	Authority           string   `toml:"authority"`
	Issuer              string   `toml:"issuer"`
	RedirectURI         string   `toml:"redirect_uri"`
	IMAP                string   `toml:"imap"`
	POP3                string   `toml:"pop3"`
	SMTP                string   `toml:"smtp"`
	Graph               string   `toml:"graph"`
	CAFile              string   `toml:"ca_file"`
	SASL                string   `toml:"sasl"`
}

type rawProxy struct {
	Listen                   string   `toml:"listen"`
	Accounts                 []string `toml:"accounts"`
	Upstream                 string   `toml:"upstream"`
	TLS                      string   `toml:"tls"`
	TLSCert                  string   `toml:"tls_cert"`
	MaxConnections           *int     `toml:"max_connections"`
	MaxConnectionsPerAccount *int     `toml:"max_connections_per_account"`
	IdleTimeout              string   `toml:"idle_timeout"`
}

type rawServe struct {
	Socket    string `toml:"socket"`
	Metrics   string `toml:"metrics"`
	OnRelogin string `toml:"on_relogin"`
	OnError   string `toml:"on_error"`
	OnToken   string `toml:"on_token"`
}

// checkShape walks the generically decoded document v against the Go type t
// and reports keys t has no field for and values of the wrong TOML type, in
// document order. BurntSushi/toml would stop at the first type error with a
// message naming Go types; this gives every problem, in the user's terms.
func checkShape(v any, t reflect.Type, path toml.Key, report func(key toml.Key, msg string)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			report(path, fmt.Sprintf("must be a table, not %s", tomlType(v)))
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				report(child(path, k), unknownKeyMsg(path, k, names))
				continue
			}
			checkShape(m[k], ft, child(path, k), report)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			report(path, fmt.Sprintf("must be a table, not %s", tomlType(v)))
			return
		}
		for _, k := range sortedKeys(m) {
			checkShape(m[k], t.Elem(), child(path, k), report)
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			report(path, fmt.Sprintf("must be an array of %ss, not %s", kindName(t.Elem().Kind()), tomlType(v)))
			return
		}
		for i, e := range a {
			if kindName(t.Elem().Kind()) != tomlType(e) {
				report(path, fmt.Sprintf("element %d must be a %s, not %s", i+1, kindName(t.Elem().Kind()), tomlType(e)))
			}
		}
	default:
		if want := kindName(t.Kind()); want != tomlType(v) {
			report(path, fmt.Sprintf("must be a %s, not %s", want, tomlType(v)))
		}
	}
}

// unknownKeyMsg names the keys allowed at that place, and the likely one for
// a typo.
func unknownKeyMsg(table toml.Key, k string, allowed []string) string {
	where := "at the top level"
	if len(table) > 0 {
		where = "in " + describeTable(table)
	}
	msg := fmt.Sprintf("unknown key %q %s", k, where)
	if strings.Contains(k, "insecure") || strings.Contains(k, "skip_verify") || strings.Contains(k, "verify") {
		// Deliberately no such switch: certificates are always verified.
		return msg + "; TLS is always verified: trust a private CA with ca_file, or use the imap+insecure:// (pop3+, smtp+) scheme for a loopback test server"
	}
	if best := closest(k, allowed); best != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", best)
	}
	slices.Sort(allowed)
	return msg + "; known keys: " + strings.Join(allowed, ", ")
}

func describeTable(k toml.Key) string {
	switch {
	case len(k) == 2 && k[0] == "accounts":
		return "an account"
	case len(k) == 2 && k[0] == "proxy":
		return "a proxy"
	}
	return "[" + k.String() + "]"
}

// closest returns the allowed name at edit distance ≤ 2 from k, if any.
func closest(k string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(k, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "table"
	}
	return k.String()
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	}
	return "date/time"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// child returns a fresh path one level below path (never sharing its array).
func child(path toml.Key, k string) toml.Key {
	return append(append(toml.Key(nil), path...), k)
}
