package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// syncBuffer is a bytes.Buffer that signals its first line, which is where
// "greeter serve" says the address it listens on.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	first chan string
	once  sync.Once
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{first: make(chan string, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if line, _, ok := strings.Cut(s.b.String(), "\n"); ok {
		s.once.Do(func() { s.first <- line })
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs "greeter serve" with args on 127.0.0.1:0 and returns its
// address, a function that stops it (cancels its context, as SIGTERM does)
// and returns its exit code, and its stderr.
func startServe(t *testing.T, args ...string) (addr string, stop func() int, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), stdout, stderr) }()
	select {
	case line := <-stdout.first:
		addr = line[strings.LastIndex(line, " ")+1:]
	case c := <-code:
		cancel()
		t.Fatalf("serve exited with %d: %s", c, stderr)
	case <-time.After(defaultTestTimeout):
		cancel()
		t.Fatal("serve did not start")
	}
	var once sync.Once
	var exit int
	stop = func() int {
		once.Do(func() {
			cancel()
			exit = <-code
		})
		return exit
	}
	t.Cleanup(func() { stop() })
	return addr, stop, stderr
}

// serveInProcess serves a greeter server built with opts on 127.0.0.1:0, for
// tests that need to reach inside the server, and stops it at the end.
func serveInProcess(t *testing.T, opts ...greeter.ServerOption) (*greeter.Server, string) {
	t.Helper()
	srv, err := greeter.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stop hard: the test is over
		_ = srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

// runCmd runs one greeter command and returns its exit code and output.
func runCmd(args ...string) (code int, stdout, stderr string) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCallRetriesAgainstFailFirst(t *testing.T) {
	addr, _, _ := startServe(t, "--fail-first", "2")
	code, out, errOut := runCmd("call", "--addr", addr, "--timeout", "5s", "--name", "retry")
	if code != 0 || strings.TrimSpace(out) != "Hello, retry!" {
		t.Fatalf("call against --fail-first 2 = %d, %q, %q; want success after retries", code, out, errOut)
	}

	// More failures than the default retry policy's 4 attempts: the call
	// fails, with the server's status.
	addr, _, _ = startServe(t, "--fail-first", "4")
	code, _, errOut = runCmd("call", "--addr", addr, "--timeout", "5s")
	if code != 1 || !strings.HasPrefix(errOut, "Unavailable:") {
		t.Fatalf("call against --fail-first 4 = %d, %q; want exit 1 and Unavailable", code, errOut)
	}
}

func TestCallHeadersVerbose(t *testing.T) {
	addr, _, _ := startServe(t, "--request-id")
	code, out, errOut := runCmd("call", "--addr", addr, "-v", "--header", "x-request-id=abc-123", "--header", "x-trace-bin=AAEC/w==")
	if code != 0 || strings.TrimSpace(out) != "Hello, world!" {
		t.Fatalf("call -v = %d, %q, %q", code, out, errOut)
	}
	// greeter serve echoes the caller's request id in a response header.
	if !strings.Contains(errOut, "< header x-request-id: abc-123\n") {
		t.Fatalf("call -v stderr lacks the response header x-request-id:\n%s", errOut)
	}
	if !strings.Contains(errOut, "< header content-type: application/grpc\n") {
		t.Fatalf("call -v stderr lacks the response headers:\n%s", errOut)
	}
	// Results stay on stdout, diagnostics on stderr.
	if strings.Contains(out, "<") {
		t.Fatalf("headers printed to stdout: %q", out)
	}

	for _, bad := range []string{"novalue", "=v", "x-bad-bin=not base64!"} {
		if code, _, _ := runCmd("call", "--addr", addr, "--header", bad); code != 2 {
			t.Errorf("call --header %q = %d, want 2 (bad flag)", bad, code)
		}
	}
}

// payloadSizes is a server stats handler that records request payloads'
// uncompressed and on-the-wire sizes.
type payloadSizes struct {
	mu           sync.Mutex
	length, wire int
}

func (p *payloadSizes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (p *payloadSizes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (p *payloadSizes) HandleConn(context.Context, stats.ConnStats)                       {}
func (p *payloadSizes) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		p.mu.Lock()
		p.length, p.wire = in.Length, in.WireLength
		p.mu.Unlock()
	}
}

func TestCallCompressGzip(t *testing.T) {
	var sizes payloadSizes
	_, addr := serveInProcess(t, greeter.WithGRPCServerOptions(grpc.StatsHandler(&sizes)))
	name := strings.Repeat("gzip ", 200)
	code, out, errOut := runCmd("call", "--addr", addr, "--compress", "gzip", "--name", name)
	if code != 0 || strings.TrimSpace(out) != "Hello, "+name+"!" {
		t.Fatalf("call --compress gzip = %d, %.30q, %q", code, out, errOut)
	}
	sizes.mu.Lock()
	length, wire := sizes.length, sizes.wire
	sizes.mu.Unlock()
	if wire >= length/4 {
		t.Fatalf("request arrived as %d bytes on the wire for %d bytes of message: not compressed", wire, length)
	}
	if code, _, errOut := runCmd("call", "--addr", addr, "--compress", "zstd-nope"); code != 2 || !strings.Contains(errOut, "zstd-nope") {
		t.Fatalf("call --compress with an unknown codec = %d, %q; want 2 naming it", code, errOut)
	}
}

// TestServeShutdownLosesNoInFlightCall cancels serve's context (what SIGTERM
// does) under load: streams in flight at that moment run to completion, the
// process exits 0 only after them, and unary calls either succeed or are
// refused with Unavailable.
func TestServeShutdownLosesNoInFlightCall(t *testing.T) {
	addr, stop, stderr := startServe(t, "--grace", "10s")
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()

	// Streams surely in flight: each has completed an exchange.
	const streams = 20
	var open []grpc.BidiStreamingClient[greeterpb.HelloRequest, greeterpb.HelloReply]
	for range streams {
		s, err := c.SayHelloBidiStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&greeterpb.HelloRequest{Name: "before"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	// And a unary load running across the shutdown.
	var ok, refused atomic.Int32
	loaded := make(chan struct{}) // closed after 50 successful calls
	var loadedOnce sync.Once
	loadDone := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				_, err := c.SayHello(ctx, "load")
				switch status.Code(err) {
				case codes.OK:
					if ok.Add(1) == 50 {
						loadedOnce.Do(func() { close(loaded) })
					}
					continue
				case codes.Unavailable:
					refused.Add(1)
					loadDone <- nil
				default:
					loadDone <- err
				}
				return
			}
		}()
	}
	select {
	case <-loaded:
	case err := <-loadDone:
		t.Fatalf("load ended before shutdown: %v", err)
	}

	exit := make(chan int, 1)
	go func() { exit <- stop() }() // SIGTERM

	for range 8 {
		if err := <-loadDone; err != nil {
			t.Fatalf("a unary call failed with %v: want success or Unavailable (refused)", err)
		}
	}
	select {
	case code := <-exit:
		t.Fatalf("serve exited (%d) with %d streams in flight", code, streams)
	default:
	}
	for i, s := range open {
		if err := s.Send(&greeterpb.HelloRequest{Name: "after"}); err != nil {
			t.Fatalf("stream %d: Send after SIGTERM: %v", i, err)
		}
		if r, err := s.Recv(); err != nil || r.GetMessage() != "Hello, after!" {
			t.Fatalf("stream %d: Recv after SIGTERM = %q, %v", i, r.GetMessage(), err)
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("stream %d ended with %v, want io.EOF", i, err)
		}
	}
	if code := <-exit; code != 0 {
		t.Fatalf("serve exit code %d after a graceful shutdown, want 0; stderr:\n%s", code, stderr)
	}
	t.Logf("unary calls: %d succeeded, %d loops ended refused with Unavailable", ok.Load(), refused.Load())
}
