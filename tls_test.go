package greeter_test

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/internal/testpki"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// newCA makes a throwaway CA and a server certificate it signs for
// 127.0.0.1 and localhost. Nothing is written to disk.
func newCA(t *testing.T) (serverCert tls.Certificate, roots *x509.CertPool) {
	t.Helper()
	ca := testpki.NewCA(t, "greeter test CA")
	return ca.Issue(t, testpki.Localhost()).TLS, ca.Pool()
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
