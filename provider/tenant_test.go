package provider

import (
	"regexp"
	"strings"
	"testing"
)

// The expressions isGUID and isDomain replace (see their comment).
var (
	guidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$`)
)

// FuzzTenantMatchers: the hand-written tenant matchers accept exactly the
// strings the former regular expressions matched.
func FuzzTenantMatchers(f *testing.F) {
	for _, s := range []string{
		"", ".", "com", "contoso.com", "contoso.onmicrosoft.com", "a.b.co", "a.c", "-a.com", "a-.com", "a--b.com",
		"a..com", ".a.com", "a.com.", "a.c0m", "xn--bcher-kva.example", "contoso.com\n", "contoso .com", "contoSO.COM",
		strings.Repeat("a", 63) + ".com", strings.Repeat("a", 64) + ".com", "a." + strings.Repeat("b", 63), "a." + strings.Repeat("b", 64),
		"9188040d-6c67-4c5b-b112-36a304b66dad", "9188040D-6C67-4C5B-B112-36A304B66DAD", "9188040d-6c67-4c5b-b112-36a304b66da",
		"9188040d-6c67-4c5b-b112-36a304b66dadd", "9188040d6c67-4c5b-b112-36a304b66dad-", "9188040g-6c67-4c5b-b112-36a304b66dad",
		"9188040d-6c67-4c5b-b112+36a304b66dad", "é.com", "a.cé",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isGUID(s), guidRE.MatchString(s); got != want {
			t.Errorf("isGUID(%q) = %v, the regexp says %v", s, got, want)
		}
		if got, want := isDomain(s), domainRE.MatchString(s); got != want {
			t.Errorf("isDomain(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
