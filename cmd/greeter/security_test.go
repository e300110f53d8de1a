package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grpc-greeter/greeter/internal/testpki"
)

// TestPlaintextBeyondLoopback: serve refuses plaintext on an address
// other hosts can reach unless --insecure says so; loopback needs neither.
func TestPlaintextBeyondLoopback(t *testing.T) {
	code, _, errOut := runCmd("serve", "--addr", "0.0.0.0:0")
	if code != 2 || !strings.Contains(errOut, "refusing to serve plaintext on 0.0.0.0:") || !strings.Contains(errOut, "--insecure") {
		t.Errorf("serve --addr 0.0.0.0:0 = exit %d, stderr %q; want 2, refusing plaintext, naming --insecure", code, errOut)
	}
	// Refused before listening: nothing is bound beyond loopback, here or
	// below.
	for _, addr := range []string{":0", "[::]:0", "192.0.2.1:0"} {
		if code, _, errOut := runCmd("serve", "--addr", addr); code != 2 || !strings.Contains(errOut, "refusing to serve plaintext on "+addr) {
			t.Errorf("serve --addr %s = exit %d, stderr %q; want 2, refusing plaintext", addr, code, errOut)
		}
	}
	if code, _, errOut := runCmd("serve", "--admin-addr", "0.0.0.0:0"); code != 2 || !strings.Contains(errOut, "refusing to serve the admin services") || !strings.Contains(errOut, "--insecure") {
		t.Errorf("serve --admin-addr 0.0.0.0:0 = exit %d, stderr %q; want 2, refusing, naming --insecure", code, errOut)
	}
	// --insecure lets both through (checked without binding beyond
	// loopback).
	insecure := true
	f := securityFlags{insecure: &insecure, tlsOn: func() bool { return false }}
	if err := f.checkAddr(":50051"); err != nil {
		t.Errorf("--insecure --addr :50051: %v", err)
	}
	if err := f.checkAdmin("0.0.0.0:9000"); err != nil {
		t.Errorf("--insecure --admin-addr 0.0.0.0:9000: %v", err)
	}
	_, cert, key := writeTestPKI(t)
	if code, _, errOut := runCmd("serve", "--addr", "127.0.0.1:0", "--insecure", "--tls-cert", cert, "--tls-key", key); code != 2 || !strings.Contains(errOut, "choose one") {
		t.Errorf("serve --insecure --tls-cert = exit %d, %q; want 2", code, errOut)
	}
}

const cliPolicy = `{
  "name": "greeter",
  "allow_rules": [
    {"name": "hello-for-all", "request": {"paths": ["/Greeter/SayHello", "/grpc.health.v1.Health/*"]}},
    {"name": "again-for-admin", "source": {"principals": ["spiffe://greeter.test/admin"]}, "request": {"paths": ["/Greeter/SayHelloAgain"]}}
  ]
}`

// TestSecureServeCLI: serve with mTLS, tokens and a policy; call and
// health with client certificates and tokens, as the guide shows them.
func TestSecureServeCLI(t *testing.T) {
	dir := t.TempDir()
	ca, other := testpki.NewCA(t, "greeter CLI CA"), testpki.NewCA(t, "another CA")
	caFile := testpki.Write(t, dir, "ca.pem", ca.PEM)
	srvCert, srvKey := testpki.WritePair(t, dir, "server", ca.Issue(t, testpki.Localhost()))
	adminCert, adminKey := testpki.WritePair(t, dir, "admin", ca.Issue(t, testpki.Leaf{CommonName: "admin", URIs: []string{"spiffe://greeter.test/admin"}}))
	guestCert, guestKey := testpki.WritePair(t, dir, "guest", ca.Issue(t, testpki.Leaf{CommonName: "guest", URIs: []string{"spiffe://greeter.test/guest"}}))
	otherCert, otherKey := testpki.WritePair(t, dir, "other", other.Issue(t, testpki.Leaf{CommonName: "admin", URIs: []string{"spiffe://greeter.test/admin"}}))
	tokens := testpki.Write(t, dir, "tokens", []byte("# identity token\nci  ci-token-1\n"))
	policy := testpki.Write(t, dir, "policy.json", []byte(cliPolicy))

	addr, _, _ := startServe(t, "--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", caFile,
		"--token-file", tokens, "--authz-policy", policy)
	admin := []string{"--tls-ca", caFile, "--tls-cert", adminCert, "--tls-key", adminKey}
	guest := []string{"--tls-ca", caFile, "--tls-cert", guestCert, "--tls-key", guestKey}
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		out     string
		errPart string
	}{
		{"admin SayHelloAgain", append(admin, "--token", "ci-token-1", "--again"), 0, "Hello again, world!\n", ""},
		{"guest SayHello", append(guest, "--token", "ci-token-1"), 0, "Hello, world!\n", ""},
		{"guest SayHelloAgain", append(guest, "--token", "ci-token-1", "--again"), 1, "", `PermissionDenied: permission denied: the server's authorization policy does not allow "spiffe://greeter.test/guest" to call /Greeter/SayHelloAgain`},
		{"no token", admin, 1, "", "Unauthenticated: missing bearer token"},
		{"wrong token", append(admin, "--token", "ci-token-2"), 1, "", "Unauthenticated: invalid bearer token"},
		{"certificate from another CA", []string{"--tls-ca", caFile, "--tls-cert", otherCert, "--tls-key", otherKey, "--token", "ci-token-1"}, 1, "", "Unavailable: "},
		{"no certificate", []string{"--tls-ca", caFile, "--token", "ci-token-1"}, 1, "", "Unavailable: "},
		{"plaintext", nil, 1, "", "Unavailable: "},
		{"token over plaintext", []string{"--token", "ci-token-1"}, 2, "", "--token needs TLS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(append([]string{"call", "--addr", addr, "--timeout", "5s"}, tt.args...)...)
			if code != tt.code || out != tt.out || !strings.Contains(errOut, tt.errPart) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, tt.code, tt.out, tt.errPart)
			}
			if strings.Contains(errOut, "ci-token") {
				t.Errorf("stderr repeats the token: %q", errOut)
			}
		})
	}
	if code, out, errOut := runCmd(append([]string{"health", "--addr", addr}, guest...)...); code != 0 || strings.TrimSpace(out) != "SERVING" {
		t.Errorf("health with a client certificate and no token: exit %d, %q, %q; want 0, SERVING", code, out, errOut)
	}
	if code, _, errOut := runCmd("health", "--addr", addr, "--tls-ca", caFile); code != 2 {
		t.Errorf("health without a client certificate: exit %d, %q; want 2 (no connection)", code, errOut)
	}
}

func TestSecurityFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	_, cert, key := writeTestPKI(t)
	bad := filepath.Join(dir, "tokens")
	if err := os.WriteFile(bad, []byte("alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dup := filepath.Join(dir, "dup")
	if err := os.WriteFile(dup, []byte("alice s3cret-a\nbob s3cret-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--token-file", dup}, "--token-file without TLS"},
		{[]string{"serve", "--tls-cert", cert, "--tls-key", key, "--token-file", bad}, "line 1: want \"IDENTITY TOKEN\""},
		{[]string{"serve", "--tls-cert", cert, "--tls-key", key, "--token-file", dup}, "the same token"},
		{[]string{"serve", "--tls-client-ca", cert}, "--tls-client-ca needs --tls-cert"},
		{[]string{"serve", "--authz-policy", filepath.Join(dir, "missing.json")}, "WithAuthzPolicyFile"},
		{[]string{"serve", "--rate-burst", "3"}, "--rate-burst needs --rate-limit"},
		{[]string{"serve", "--rate-limit", "NaN"}, "want a number of calls a second"},
		{[]string{"call", "--tls-cert", cert}, "--tls-cert and --tls-key go together"},
		{[]string{"bench", "--token", "t"}, "--token needs TLS"},
	} {
		code, _, errOut := runCmd(append(tt.args, "--addr", "127.0.0.1:0")...)
		if code != 2 || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, "s3cret") {
			t.Errorf("greeter %v: exit %d, stderr %q; want 2 with %q, no token", tt.args, code, errOut, tt.want)
		}
	}
}
