package emulator

import (
	"strings"
	"testing"
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

func TestParseScenarioRejectsUnknownKeys(t *testing.T) {
	_, err := ParseScenario([]byte("[settings]\nthrotle = true\n"), "")
	if err == nil || !strings.Contains(err.Error(), "settings.throtle") {
		t.Fatalf("err = %v, want unknown key settings.throtle", err)
	}
}
