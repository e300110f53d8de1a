package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestPKI writes a throwaway CA certificate and a server certificate and
// key for 127.0.0.1 and localhost, signed by it, as PEM files in a temp dir.
func writeTestPKI(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, key := newKey(), newKey()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "greeter CLI test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

func TestTLSCLI(t *testing.T) {
	ca, cert, key := writeTestPKI(t)
	addr, _, _ := startServe(t, "--tls-cert", cert, "--tls-key", key)

	if code, out, errOut := runCmd("call", "--addr", addr, "--tls-ca", ca, "--name", "tls"); code != 0 || out != "Hello, tls!\n" {
		t.Errorf("call --tls-ca: exit %d, stdout %q, stderr %q; want 0, Hello, tls!", code, out, errOut)
	}
	if code, out, errOut := runCmd("health", "--addr", addr, "--tls-ca", ca); code != 0 || strings.TrimSpace(out) != "SERVING" {
		t.Errorf("health --tls-ca: exit %d, stdout %q, stderr %q; want 0, SERVING", code, out, errOut)
	}
	// Plaintext to a TLS server, and TLS trusting only the system's roots,
	// both fail to connect. The default service config retries Unavailable
	// up to four attempts, with 0.56s to 0.84s of backoff in all: the budget
	// leaves room for them on a loaded machine, so that the call ends with
	// their Unavailable rather than with its own deadline.
	for _, args := range [][]string{{}, {"--tls"}} {
		code, _, errOut := runCmd(append([]string{"call", "--addr", addr, "--timeout", "10s"}, args...)...)
		if code != 1 || !strings.HasPrefix(errOut, "Unavailable: ") {
			t.Errorf("call %v against a TLS server: exit %d, stderr %q; want 1, Unavailable", args, code, errOut)
		}
	}
	// Misused flags are usage errors.
	for _, args := range [][]string{
		{"serve", "--tls-cert", cert},
		{"call", "--tls-server-name", "localhost"},
		{"call", "--tls-ca", filepath.Join(t.TempDir(), "missing.pem")},
	} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("greeter %v exited %d, want 2", args, code)
		}
	}
}
