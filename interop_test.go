package greeter_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// These tests run the Python grpcio tutorial's greeter client and server
// (testdata/python, stubs generated at test time from the classic
// helloworld.proto) against ours, both ways. They need python3 with grpcio
// and grpcio-tools: Debian's python3-grpcio and python3-grpc-tools. Without
// them they skip, unless GREETER_REQUIRE_INTEROP=1 makes that a failure.

// python returns a Python interpreter that can import grpc and grpc_tools.
func python(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3", "python3"}
	if p := os.Getenv("GREETER_PYTHON"); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import grpc, grpc_tools.protoc").Run() == nil {
			return p
		}
	}
	msg := "no python3 with grpc and grpc_tools (tried " + strings.Join(candidates, ", ") +
		"); install Debian's python3-grpcio and python3-grpc-tools"
	if os.Getenv("GREETER_REQUIRE_INTEROP") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set GREETER_REQUIRE_INTEROP=1 to make this a failure)")
	return ""
}

// pythonGreeter copies the tutorial scripts and the given proto into a temp
// dir and generates the Python stubs there.
func pythonGreeter(t *testing.T, py, proto string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"greeter_client.py":     "testdata/python/greeter_client.py",
		"greeter_client_tls.py": "testdata/python/greeter_client_tls.py",
		"greeter_server.py":     "testdata/python/greeter_server.py",
		"helloworld.proto":      proto,
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(py, "-m", "grpc_tools.protoc", "-I"+dir,
		"--python_out="+dir, "--grpc_python_out="+dir, filepath.Join(dir, "helloworld.proto")).CombinedOutput()
	if err != nil {
		t.Fatalf("grpc_tools.protoc: %v\n%s", err, out)
	}
	return dir
}

func TestInteropPythonClient(t *testing.T) {
	py := python(t)
	_, addr := startTCPGreeter(t)
	for _, tt := range []struct{ name, proto string }{
		{"classic package-less proto", "testdata/python/helloworld.proto"},
		{"upstream helloworld package", "testdata/python/upstream/helloworld.proto"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := pythonGreeter(t, py, tt.proto)
			cmd := exec.CommandContext(testContext(t), py, "greeter_client.py", addr, "you")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("greeter_client.py: %v\n%s", err, out)
			}
			if got, want := strings.TrimSpace(string(out)), "Greeter client received: Hello, you!"; got != want {
				t.Fatalf("Python client printed %q, want %q", got, want)
			}
		})
	}
}

// TestInteropPythonClientDeadline: a grpcio client's timeout reaches our
// server as grpc-timeout, and a server slower than it (WithDelay) makes the
// Python client fail at its deadline; a longer timeout succeeds. The Python
// client says DEADLINE_EXCEEDED, or, when its own timer runs late (a
// starved process), CANCELLED from the RST_STREAM that grpc-go's server
// sends when the same deadline runs out on its side: both end the call at
// the deadline the client set.
func TestInteropPythonClientDeadline(t *testing.T) {
	py := python(t)
	_, addr := startTCPGreeter(t, greeter.WithDelay(300*time.Millisecond))
	dir := pythonGreeter(t, py, "testdata/python/helloworld.proto")
	for _, tt := range []struct {
		timeout string
		want    string
		ok      bool
	}{
		{"0.1", "Greeter client failed: DEADLINE_EXCEEDED", false},
		{"5", "Greeter client received: Hello, python!", true},
	} {
		cmd := exec.CommandContext(testContext(t), py, "greeter_client.py", addr, "python", tt.timeout)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		got := strings.TrimSpace(string(out))
		if !tt.ok && strings.HasPrefix(got, "Greeter client failed: CANCELLED: Received RST_STREAM with error code 8") {
			got = tt.want // the server's end of the same deadline came first
		}
		if (err == nil) != tt.ok || !strings.HasPrefix(got, tt.want) {
			t.Errorf("greeter_client.py with timeout=%s against a 300ms server: %v, output %q; want %q", tt.timeout, err, out, tt.want)
		}
	}
}

func TestInteropPythonServer(t *testing.T) {
	py := python(t)
	dir := pythonGreeter(t, py, "testdata/python/helloworld.proto")
	ctx := testContext(t)

	// Killed when ctx ends, which bounds the wait for its first line too.
	cmd := exec.CommandContext(ctx, py, "greeter_server.py", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The server prints its port once it is listening; that line is the
	// readiness signal, so no sleep or polling is needed.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the Python server's first line: %v", err)
	}
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "Server started, listening on ")
	if !ok {
		t.Fatalf("Python server printed %q", line)
	}

	c, err := greeter.NewClient("127.0.0.1:"+port, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.SayHello(ctx, "you")
	if err != nil || got != "Hello, you!" {
		t.Fatalf("SayHello against the Python server = %q, %v; want %q", got, err, "Hello, you!")
	}
	_, err = c.SayHelloAgain(ctx, "you")
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("SayHelloAgain against the Python server = %v, want Unimplemented", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "/Greeter/SayHelloAgain") {
		t.Fatalf("Unimplemented message %q does not name the method", msg)
	}
	stream, err := c.SayHelloStreamReply(ctx, "you")
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented || !strings.Contains(status.Convert(err).Message(), "/Greeter/SayHelloStreamReply") {
		t.Fatalf("SayHelloStreamReply against the Python server = %v; want Unimplemented naming the method", err)
	}
}
