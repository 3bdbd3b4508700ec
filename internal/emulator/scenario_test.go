package emulator

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultScenarioBuilds(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := e.Demo()
	if d.TenantID == "" || d.PublicClientID == "" || d.ConfidentialID == "" || len(d.Users) != 2 {
		t.Fatalf("demo values incomplete: %+v", d)
	}
}

// TestScenarioFileErrors: a scenario file's mistakes name the file and the
// line (unknown keys, each one; syntax), or at least the file (values), and
// all wrap ErrScenario so the CLI can tell them from a missing file.
func TestScenarioFileErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, toml string
		want       []string // lines of the message after "invalid scenario"
	}{
		{"unknown keys", "[settings]\nthrotle = true\n\n[[tenants]]\nid = \"11111111-1111-4111-8111-111111111111\"\n\n  [[tenants.users]]\n  upn = \"a@b.example\"\n  mfa_requird = true\n", []string{
			"invalid scenario:",
			"FILE:2: settings.throtle: unknown key (see internal/emulator/README.md for the scenario keys)",
			"FILE:9: tenants.users.mfa_requird: unknown key (see internal/emulator/README.md for the scenario keys)"}},
		{"syntax", "[settings]\nthrottle = yes\n", []string{"invalid scenario: FILE:2: expected value but found \"yes\" instead"}},
		{"value", "[[tenants]]\nid = \"x\"\n", []string{`invalid scenario: FILE: tenants[0]: id "x" is not a GUID`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			if err := os.WriteFile(file, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			sc, err := LoadScenario(file)
			if err == nil {
				_, err = New(Options{Scenario: sc})
			}
			if !errors.Is(err, ErrScenario) {
				t.Fatalf("err = %v, want ErrScenario", err)
			}
			want := strings.ReplaceAll(strings.Join(tc.want, "\n"), "FILE", file)
			if diff := cmp.Diff(want, err.Error()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if _, err := LoadScenario(filepath.Join(dir, "none.toml")); err == nil || errors.Is(err, ErrScenario) {
		t.Errorf("missing file: %v, want a read error that is not ErrScenario", err)
	}
	_, err := ParseScenario([]byte("[settings]\nthrotle = true\n"), "")
	if err == nil || !strings.Contains(err.Error(), "line 2: settings.throtle: unknown key") {
		t.Errorf("ParseScenario: %v, want the line of settings.throtle", err)
	}
}

func TestScenarioErrors(t *testing.T) {
	const tenant = "[[tenants]]\nid = \"11111111-1111-4111-8111-111111111111\"\ndomains = [\"a.example\"]\n"
	cases := []struct {
		name, toml, want string
	}{
		{"unknown key in a table array", tenant + "bogus = 1\n", "tenants.bogus"},
		{"tenant id not a GUID", "[[tenants]]\nid = \"x\"\n", "not a GUID"},
		{"unknown cloud", "[[tenants]]\nid = \"11111111-1111-4111-8111-111111111111\"\ncloud = \"mars\"\n", "unknown cloud"},
		{"duplicate domain", tenant + "[[tenants]]\nid = \"22222222-2222-4222-8222-222222222222\"\ndomains = [\"A.example\"]\n", "already verified"},
		{"app without home tenant", "[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\n", "home_tenant"},
		{"unknown permission", tenant + "[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\nhome_tenant = \"a.example\"\ndelegated_permissions = [\"https://outlook.office.com/Nope\"]\n", "defines no delegated permission"},
		{"app role as delegated", tenant + "[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\nhome_tenant = \"a.example\"\ndelegated_permissions = [\"https://outlook.office365.com/IMAP.AccessAsApp\"]\n", "defines no delegated permission"},
		{"bad audience", tenant + "[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\nhome_tenant = \"a.example\"\nsign_in_audience = \"Everyone\"\n", "sign_in_audience"},
		{"secret without value", tenant + "[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\nhome_tenant = \"a.example\"\n[[apps.secrets]]\nid = \"x\"\n", "value is required"},
		{"certificate without source", tenant + "[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\nhome_tenant = \"a.example\"\n[[apps.certificates]]\n", "generate = true or cert_file"},
		{"consent for unknown app", tenant + "[[consents]]\ntenant = \"a.example\"\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000009\"\n", "unknown client_id"},
		{"bad smtp_auth", tenant + "[[tenants.users]]\nupn = \"u@a.example\"\nsmtp_auth = \"maybe\"\n", "smtp_auth"},
		{"demo user unknown", tenant + "[demo]\nusers = [\"ghost@a.example\"]\n", "unknown user"},
		{"bad loopback cloud", "[settings]\nloopback_cloud = \"mars\"\n", "loopback_cloud"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := ParseScenario([]byte(tc.toml), t.TempDir())
			if err == nil {
				_, err = New(Options{Scenario: sc})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestScenarioCertFile(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := e.AppCertificate(e.Demo().ConfidentialID)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	toml := "[[tenants]]\nid = \"11111111-1111-4111-8111-111111111111\"\n" +
		"[[apps]]\nclient_id = \"aaaaaaaa-0000-4000-8000-000000000001\"\nhome_tenant = \"11111111-1111-4111-8111-111111111111\"\n" +
		"[[apps.certificates]]\ncert_file = \"app.pem\"\nkey_file = \"app.key\"\n"
	if err := os.WriteFile(filepath.Join(dir, "s.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := LoadScenario(filepath.Join(dir, "s.toml"))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Options{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	c2, k2, err := e2.AppCertificate("aaaaaaaa-0000-4000-8000-000000000001")
	if err != nil || string(c2) != string(certPEM) || string(k2) != string(keyPEM) {
		t.Fatalf("certificate from files differs (err %v)", err)
	}
}
