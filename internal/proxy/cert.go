package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertFileName is the generated local certificate's file in the state
// directory, used when the config names no tls_cert.
const CertFileName = "proxy-cert.pem"

// LoadOrCreateCert loads the certificate and private key (both PEM, in one
// file) at path, or, when the file does not exist, generates a self-signed
// ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1, valid ten
// years, and stores it there with mode 0600 so mail clients that pinned it
// keep trusting it across restarts. It says whether it generated one.
func LoadOrCreateCert(path string) (tls.Certificate, bool, error) {
	c, err := tls.LoadX509KeyPair(path, path)
	if err == nil {
		return c, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("proxy certificate %s: %w", path, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailoauth proxy"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("proxy certificate: %w", err)
	}
	// O_EXCL: two proxies starting at once must not overwrite each other's
	// key; the loser loads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		c, err := tls.LoadX509KeyPair(path, path)
		return c, false, err
	}
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("proxy certificate: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return tls.Certificate{}, false, fmt.Errorf("proxy certificate: %w", err)
	}
	if err := f.Close(); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("proxy certificate: %w", err)
	}
	c, err = tls.X509KeyPair(data, data)
	return c, true, err
}
