package main

import (
	"net"
	"strings"
	"testing"
)

// The common first mistakes, made on the CLI as a new user would: what
// greeter prints names the address, the cause and the flag that fixes it.
func TestCallMistakesCLI(t *testing.T) {
	plain := serveCLI(t, "127.0.0.1:0")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := lis.Addr().String()
	lis.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"nothing listens", []string{"--addr", refused, "--timeout", "200ms"}, 1,
			[]string{"DeadlineExceeded", "while waiting for a connection", refused, "connection refused", "--addr"}},
		{"no port", []string{"--addr", "127.0.0.1"}, 2,
			[]string{"no port", "127.0.0.1:443", "127.0.0.1:50051"}},
		{"TLS to a plaintext server", []string{"--addr", plain, "--tls"}, 1,
			[]string{"Unavailable", plain, "speaks plaintext", "--tls"}},
		{"wrong service name", []string{"--addr", plain, "--service", "helloworld.Greeters"}, 1,
			[]string{"Unimplemented", "/helloworld.Greeters/SayHello", "--service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr, _ := callCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d; want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// serve --upstream pointing at the server's own address is refused at
// start, before it can relay a call to itself.
func TestServeUpstreamSelfRefused(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	_, port, _ := net.SplitHostPort(addr)
	for _, up := range []string{addr, "localhost:" + port} {
		var out, errOut strings.Builder
		code := run(t.Context(), []string{"serve", "--addr", addr, "--upstream", up}, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--upstream "+up+" is this server's own address") {
			t.Errorf("serve --addr %s --upstream %s: exit %d, stderr %q; want 2 and the reason", addr, up, code, errOut.String())
		}
	}
}
