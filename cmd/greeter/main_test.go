package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const defaultTestTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServe runs `greeter serve` with args on 127.0.0.1:0 until the test
// ends, and returns the address it printed. The test fails if serve exits
// with a non-zero code.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		var stderr bytes.Buffer
		c := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), pw, &stderr)
		if c != 0 {
			t.Logf("serve stderr:\n%s", stderr.String())
		}
		pw.Close()
		code <- c
	}()
	t.Cleanup(func() {
		cancel() // as SIGINT/SIGTERM would
		if c := <-code; c != 0 {
			t.Errorf("serve exited %d, want 0", c)
		}
	})
	// The "serving ... on ADDR" line is the readiness signal.
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("serve printed nothing: %v", sc.Err())
	}
	line := sc.Text()
	go io.Copy(io.Discard, pr) // keep serve's stdout from blocking
	addr, ok := strings.CutPrefix(line, "greeter: serving Greeter on ")
	if !ok {
		t.Fatalf("serve printed %q", line)
	}
	return addr
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestServeAndCall(t *testing.T) {
	addr := startServe(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--name", "you"}, "Hello, you!\n"},
		{nil, "Hello, world!\n"},
		{[]string{"--name", "you", "--again"}, "Hello again, you!\n"},
		{[]string{"--name", "you", "--service", "helloworld.Greeter"}, "Hello, you!\n"},
	}
	for _, tt := range tests {
		args := append([]string{"call", "--addr", addr}, tt.args...)
		code, out, errOut := runCmd(t, args...)
		if code != 0 || out != tt.want {
			t.Errorf("greeter %s = exit %d, stdout %q, stderr %q; want 0, %q", strings.Join(args, " "), code, out, errOut, tt.want)
		}
	}
}

func TestCallFailurePrintsCode(t *testing.T) {
	addr := startServe(t)
	tests := []struct {
		name     string
		args     []string
		wantCode string
	}{
		// Nothing listens on port 1 (tcpmux) on a test machine.
		{"no server", []string{"--addr", "127.0.0.1:1"}, "Unavailable: "},
		{"unknown service", []string{"--addr", addr, "--service", "nope.Greeter"}, "Unimplemented: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, append([]string{"call"}, tt.args...)...)
			if code == 0 || out != "" || !strings.HasPrefix(errOut, tt.wantCode) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want non-zero, empty stdout, stderr starting %q", code, out, errOut, tt.wantCode)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCmd(t, "--help")
	if code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "call") {
		t.Fatalf("greeter --help = %d, %q", code, out)
	}
	for cmd, flags := range map[string][]string{
		"serve": {"-addr", "-grace", "-no-reflection"},
		"call":  {"-addr", "-name", "-again", "-timeout", "-service"},
	} {
		code, _, errOut := runCmd(t, cmd, "--help")
		if code != 0 {
			t.Errorf("greeter %s --help exited %d", cmd, code)
		}
		for _, f := range flags {
			if !strings.Contains(errOut, f) {
				t.Errorf("greeter %s --help does not describe %s:\n%s", cmd, f, errOut)
			}
		}
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"call", "--nope"}, {"call", "extra"}} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("greeter %q exited %d, want 2", args, code)
		}
	}
}
