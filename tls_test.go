package greeter_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// newCA makes a throwaway CA and a server certificate it signs for
// 127.0.0.1 and localhost. Nothing is written to disk.
func newCA(t *testing.T) (serverCert tls.Certificate, roots *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "greeter test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, roots
}

func TestTLS(t *testing.T) {
	cert, roots := newCA(t)
	_, addr := startTCPGreeter(t, greeter.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	_, otherRoots := newCA(t)

	tests := []struct {
		name     string
		opts     []greeter.ClientOption
		wantCode codes.Code
		wantMsg  string
	}{
		{"trusted", []greeter.ClientOption{greeter.WithTLS(&tls.Config{RootCAs: roots})}, codes.OK, ""},
		{"unknown authority", []greeter.ClientOption{greeter.WithTLS(&tls.Config{RootCAs: otherRoots})}, codes.Unavailable, "certificate"},
		{"plaintext to a TLS server", []greeter.ClientOption{greeter.WithInsecure()}, codes.Unavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := greeter.NewClient(addr, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg, err := c.SayHello(testContext(t), "tls")
			if got := status.Code(err); got != tt.wantCode || !strings.Contains(status.Convert(err).Message(), tt.wantMsg) {
				t.Fatalf("SayHello = %q, %v; want code %v with %q in the message", msg, err, tt.wantCode, tt.wantMsg)
			}
			if tt.wantCode == codes.OK && msg != "Hello, tls!" {
				t.Fatalf("SayHello = %q", msg)
			}
		})
	}
}
