package proxy

import (
	"encoding/base64"
	"errors"
	"strings"
)

// errBadBase64 is a SASL response that is not base64.
var errBadBase64 = errors.New("invalid base64")

// decodePlain decodes a SASL PLAIN response (RFC 4616: [authzid] NUL
// authcid NUL passwd) given in base64 and returns the user and password.
// An authorization identity other than the user is refused: the proxy logs
// in as the account itself, never on behalf of another. Hand-written
// because go-sasl's PLAIN server takes the raw response through a callback
// interface and does not decode base64, so it would save nothing here.
func decodePlain(b64 string) (user, password string, err error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", "", errBadBase64
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[1] == "" {
		return "", "", errors.New("malformed PLAIN response")
	}
	if parts[0] != "" && !strings.EqualFold(parts[0], parts[1]) {
		return "", "", errors.New("authorization identity differs from the user")
	}
	return parts[1], parts[2], nil
}

// decodeB64 decodes one SASL line (SMTP AUTH LOGIN user name or password).
func decodeB64(s string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return "", errBadBase64
	}
	return string(raw), nil
}
