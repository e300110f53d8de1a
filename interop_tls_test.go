package greeter_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/internal/testpki"
)

// TestInteropPythonTLS: grpcio's own TLS credentials
// (grpc.ssl_channel_credentials, with and without a client certificate)
// and bearer tokens (grpc.access_token_call_credentials) against a
// greeter server with mTLS, tokens and a policy that lets only the admin
// say hello.
func TestInteropPythonTLS(t *testing.T) {
	py := python(t)
	dir := pythonGreeter(t, py, "testdata/python/helloworld.proto")
	ca := testpki.NewCA(t, "greeter interop CA")
	caFile := testpki.Write(t, dir, "ca.pem", ca.PEM)
	cert, key := testpki.WritePair(t, dir, "server", ca.Issue(t, testpki.Localhost()))
	adminCert, adminKey := testpki.WritePair(t, dir, "admin", ca.Issue(t, testpki.Leaf{URIs: []string{"spiffe://greeter.test/admin"}}))
	guestCert, guestKey := testpki.WritePair(t, dir, "guest", ca.Issue(t, testpki.Leaf{URIs: []string{"spiffe://greeter.test/guest"}}))
	tokens, err := greeter.StaticTokens(map[string]string{"py": "py-token"})
	if err != nil {
		t.Fatal(err)
	}
	_, tlsAddr := startTCPGreeter(t, greeter.WithTLSFiles(greeter.TLSFiles{CertFile: cert, KeyFile: key}))
	_, mtlsAddr := startTCPGreeter(t, greeter.WithTLSFiles(greeter.TLSFiles{CertFile: cert, KeyFile: key, CAFile: caFile}),
		greeter.WithTokenValidator(tokens),
		greeter.WithAuthzPolicy(`{"name": "interop", "allow_rules": [{"name": "admin", "source": {"principals": ["spiffe://greeter.test/admin"]}}]}`))
	local := func(addr string) string { return "localhost:" + addr[strings.LastIndex(addr, ":")+1:] }

	for _, tt := range []struct {
		name string
		addr string
		args []string
		want string
	}{
		{"TLS", tlsAddr, nil, "Greeter client received: Hello, you!"},
		{"mTLS admin with token", mtlsAddr, []string{"--cert", adminCert, "--key", adminKey, "--token", "py-token"}, "Greeter client received: Hello, you!"},
		{"mTLS guest with token", mtlsAddr, []string{"--cert", guestCert, "--key", guestKey, "--token", "py-token"}, "Greeter client failed: PERMISSION_DENIED: permission denied"},
		{"mTLS admin, wrong token", mtlsAddr, []string{"--cert", adminCert, "--key", adminKey, "--token", "nope"}, "Greeter client failed: UNAUTHENTICATED: invalid bearer token"},
		{"mTLS admin, no token", mtlsAddr, []string{"--cert", adminCert, "--key", adminKey}, "Greeter client failed: UNAUTHENTICATED: missing bearer token"},
		{"mTLS without a certificate", mtlsAddr, []string{"--token", "py-token"}, "Greeter client failed: UNAVAILABLE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(testContext(t), py, append([]string{"greeter_client_tls.py", local(tt.addr), caFile}, tt.args...)...)
			cmd.Dir = dir
			out, _ := cmd.Output() // grpcio logs TLS failures on stderr
			if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, tt.want) {
				t.Errorf("greeter_client_tls.py %v printed %q; want %q", tt.args, got, tt.want)
			}
		})
	}
}
