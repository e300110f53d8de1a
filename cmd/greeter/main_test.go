package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const defaultTestTimeout = 10 * time.Second

// mainEnv, set in a copy of this test binary, makes it run the command's
// main with its arguments instead of the tests: TestServeSignals sends it
// real signals.
const mainEnv = "GREETER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}

func TestServeAndCall(t *testing.T) {
	addr, stop, _ := startServe(t)
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
		code, out, errOut := runCmd(args...)
		if code != 0 || out != tt.want {
			t.Errorf("greeter %s = exit %d, stdout %q, stderr %q; want 0, %q", strings.Join(args, " "), code, out, errOut, tt.want)
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0", code)
	}
}

func TestCallFailurePrintsCode(t *testing.T) {
	addr, _, _ := startServe(t)
	tests := []struct {
		name     string
		args     []string
		wantCode string
	}{
		// Nothing listens on port 1 (tcpmux) on a test machine.
		{"no server", []string{"--addr", "127.0.0.1:1"}, "Unavailable: "},
		// grpc's retries of the refused connection outlast 200ms.
		{"no server, short deadline", []string{"--addr", "127.0.0.1:1", "--timeout", "200ms"}, "DeadlineExceeded: "},
		{"unknown service", []string{"--addr", addr, "--service", "nope.Greeter"}, "Unimplemented: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(append([]string{"call"}, tt.args...)...)
			if code == 0 || out != "" || !strings.HasPrefix(errOut, tt.wantCode) ||
				(tt.wantCode == "DeadlineExceeded: " && !strings.Contains(errOut, "while waiting for a connection")) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want non-zero, empty stdout, stderr starting %q", code, out, errOut, tt.wantCode)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCmd("--help")
	if code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "call") || !strings.Contains(out, "version") {
		t.Fatalf("greeter --help = %d, %q", code, out)
	}
	for cmd, flags := range map[string][]string{
		"serve": {"-addr", "-grace", "-no-reflection"},
		"call":  {"-addr", "-name", "-again", "-timeout", "-service"},
		"bench": {"-max-errors N", "those of the successful (OK) calls", "Exit codes:", "1  no call succeeded, or more than --max-errors"},
	} {
		code, _, errOut := runCmd(cmd, "--help")
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
	for _, args := range [][]string{nil, {"nope"}, {"call", "--nope"}, {"call", "extra"}, {"call", "--timeout", "-1s"}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("greeter %q exited %d, want 2", args, code)
		}
	}
}
