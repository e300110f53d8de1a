package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const cliTestTimeout = 10 * time.Second

// lineWriter is an io.Writer for a command's output that tests can read
// while the command runs, and await a line in.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 100)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if l != "" {
			select {
			case w.lines <- strings.TrimSpace(l):
			default:
			}
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// serveCLI runs "greeter serve --addr addr args..." until the test ends
// and returns the address it listens on.
func serveCLI(t *testing.T, addr string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newLineWriter(), newLineWriter()
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"serve", "--addr", addr}, args...), stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("serve exited %d; stderr:\n%s", c, stderr)
		}
	})
	timer := time.NewTimer(cliTestTimeout)
	defer timer.Stop()
	for {
		select {
		case l := <-stdout.lines:
			if a, ok := strings.CutPrefix(l, "greeter: serving Greeter on "); ok {
				return a
			}
		case c := <-code:
			code <- c
			t.Fatalf("serve exited %d: %s", c, stderr)
		case <-timer.C:
			t.Fatal("serve never said where it listens")
		}
	}
}

// callCLI runs "greeter call args..." and returns its exit code, output and
// duration.
func callCLI(t *testing.T, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTestTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	code = run(ctx, append([]string{"call"}, args...), &out, &errOut)
	return code, out.String(), errOut.String(), time.Since(start)
}

func TestCallTimeoutCLI(t *testing.T) {
	addr := serveCLI(t, "127.0.0.1:0", "--delay", "300ms")
	code, _, stderr, took := callCLI(t, "--addr", addr, "--timeout", "100ms")
	if code == 0 || took >= 300*time.Millisecond {
		t.Errorf("call --timeout 100ms against --delay 300ms: exit %d after %v; want non-zero well before 300ms", code, took)
	}
	for _, want := range []string{"DeadlineExceeded: deadline exceeded after", "on the server", "1 attempt"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q; want it to say %q", stderr, want)
		}
	}
	// The budget is what was left when the call started: 100ms, or a
	// millisecond or so less on a busy machine.
	if !regexp.MustCompile(`budget (9[0-9]|100)ms from caller's context`).MatchString(stderr) {
		t.Errorf("stderr %q; want it to say budget 90-100ms from caller's context", stderr)
	}
	code, stdout, stderr, _ := callCLI(t, "--addr", addr, "--timeout", "1s")
	if code != 0 || stdout != "Hello, world!\n" {
		t.Errorf("call --timeout 1s: exit %d, stdout %q, stderr %q; want 0, Hello, world!", code, stdout, stderr)
	}
}

func TestCallWaitForReadyCLI(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now

	code, _, stderr, took := callCLI(t, "--addr", addr, "--timeout", "200ms", "--wait-for-ready")
	if code == 0 || took < 200*time.Millisecond || !strings.Contains(stderr, "while waiting for a connection") {
		t.Errorf("server down: exit %d after %v, stderr %q; want non-zero at the 200ms deadline, waiting for a connection", code, took, stderr)
	}
	// Without it the call fails fast: Unavailable once DefaultServiceConfig's
	// retries (backoff 0.1s..1s, 4 attempts) give up, well before 5s.
	if code, _, stderr, took := callCLI(t, "--addr", addr, "--timeout", "5s"); code == 0 || !strings.HasPrefix(stderr, "Unavailable") || took > 4*time.Second {
		t.Errorf("server down without --wait-for-ready: exit %d after %v, stderr %q; want Unavailable well before the 5s deadline", code, took, stderr)
	}

	res := make(chan string, 1)
	go func() {
		code, stdout, stderr, _ := callCLI(t, "--addr", addr, "--timeout", "5s", "--wait-for-ready")
		res <- fmt.Sprintf("%s%s exit %d", strings.TrimSpace(stdout), stderr, code)
	}()
	// The server comes up late: after the retries of a call without
	// wait-for-ready would have given up (about 0.7s, above).
	select {
	case got := <-res:
		t.Fatalf("call --wait-for-ready returned before the server was up: %q", got)
	case <-time.After(time.Second):
	}
	serveCLI(t, addr)
	if got := <-res; got != "Hello, world! exit 0" {
		t.Errorf("call --wait-for-ready for a server starting late: %q; want Hello, world! exit 0", got)
	}
}

func TestServePolicyCLI(t *testing.T) {
	addr := serveCLI(t, "127.0.0.1:0", "--delay", "1s", "--max-timeout", "100ms", "--min-budget", "50ms")
	code, _, stderr, took := callCLI(t, "--addr", addr, "--timeout", "5s")
	if code == 0 || took > 100*time.Millisecond+time.Second || !strings.Contains(stderr, "budget 100ms from server's cap") {
		t.Errorf("--max-timeout 100ms: exit %d after %v, stderr %q; want the server's cap to end the call", code, took, stderr)
	}
	code, _, stderr, _ = callCLI(t, "--addr", addr, "--timeout", "30ms")
	if code == 0 || !strings.Contains(stderr, "needs at least 50ms") {
		t.Errorf("--min-budget 50ms, --timeout 30ms: exit %d, stderr %q; want an immediate refusal", code, stderr)
	}
}

func TestServeRelayCLI(t *testing.T) {
	// The relay keeps a reserve of a second to answer in, so that the
	// upstream's error reaches the caller before the caller's own
	// deadline also on a loaded machine: the upstream gets 100ms for its
	// 300ms of work.
	up := serveCLI(t, "127.0.0.1:0", "--delay", "300ms")
	relay := serveCLI(t, "127.0.0.1:0", "--upstream", up, "--reply-reserve", "1s")
	code, _, stderr, _ := callCLI(t, "--addr", relay, "--timeout", "1100ms")
	if code == 0 || !strings.Contains(stderr, "DeadlineExceeded") || !strings.Contains(stderr, "upstream") {
		t.Errorf("via relay to a 300ms upstream with 100ms: exit %d, stderr %q; want DeadlineExceeded from upstream", code, stderr)
	}
	code, stdout, stderr, _ := callCLI(t, "--addr", relay, "--timeout", "2s", "--name", "relay")
	if code != 0 || stdout != "Hello, relay!\n" {
		t.Errorf("via relay with 2s: exit %d, stdout %q, stderr %q; want the upstream's greeting", code, stdout, stderr)
	}
}

func TestCallStreamCLI(t *testing.T) {
	addr := serveCLI(t, "127.0.0.1:0", "--delay", "100ms")
	code, stdout, stderr, _ := callCLI(t, "--addr", addr, "--stream", "--timeout", "250ms")
	if code == 0 || strings.Count(stdout, "\n") != 2 || !strings.Contains(stderr, "DeadlineExceeded") {
		t.Errorf("stream with 250ms against 100ms per reply: exit %d, stdout %q, stderr %q; want 2 replies then DeadlineExceeded", code, stdout, stderr)
	}
	code, stdout, stderr, _ = callCLI(t, "--addr", addr, "--stream", "--timeout", "0", "--idle-timeout", "200ms")
	if code != 0 || strings.Count(stdout, "\n") != 3 {
		t.Errorf("stream with idle timeout 200ms, no deadline: exit %d, stdout %q, stderr %q; want all 3 replies", code, stdout, stderr)
	}
}
