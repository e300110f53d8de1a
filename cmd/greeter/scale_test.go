package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
)

// countedServer serves a greeter on 127.0.0.1 that counts its calls.
func countedServer(t *testing.T) (addr string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	srv, err := greeter.NewServer(greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return h(ctx, req)
	}))
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
		cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return lis.Addr().String(), calls
}

// A greeter:/// list of three servers, one of them stopped: call and bench
// --lb round_robin lose no call and spread over the two left.
func TestGreeterListThroughCLI(t *testing.T) {
	a, aCalls := countedServer(t)
	stopped, stop, _ := startServe(t)
	b, bCalls := countedServer(t)
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	target := "greeter:///" + strings.Join([]string{a, stopped, b}, ",")

	code, out, errOut := runCmd("call", "--addr", target, "--name", "fleet")
	if code != 0 || out != "Hello, fleet!\n" {
		t.Fatalf("call --addr %s = %d, %q, %q; want the greeting", target, code, out, errOut)
	}

	aCalls.Store(0)
	bCalls.Store(0)
	code, out, errOut = runCmd("bench", "--addr", target, "--lb", "round_robin", "--total", "300", "--concurrency", "4", "--json")
	if code != 0 {
		t.Fatalf("bench = %d, %s, %s", code, out, errOut)
	}
	var rep struct {
		OK     int64            `json:"ok"`
		Errors map[string]int64 `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.OK != 300 || len(rep.Errors) != 0 {
		t.Errorf("bench over the list with one server stopped: %d OK, errors %v; want 300 OK", rep.OK, rep.Errors)
	}
	if na, nb := aCalls.Load(), bCalls.Load(); na < 100 || nb < 100 {
		t.Errorf("round_robin split 300 calls %d and %d between the two live servers; want about 150 each", na, nb)
	}
}

// Mistakes in --addr and --lb are bad flags (exit 2) that say what is
// wrong.
func TestScaleFlagMistakes(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"call", "--addr", "greeter:///127.0.0.1"}, "want HOST:PORT"},
		{[]string{"call", "--addr", "xds:///greeter"}, "github.com/grpc-greeter/greeter/xds"},
		{[]string{"call", "--addr", "127.0.0.1:1", "--lb", "fastest"}, "no such load-balancing policy"},
		{[]string{"bench", "--addr", "greeter://elsewhere/x"}, `unknown authority "elsewhere"`},
	}
	for _, tt := range tests {
		code, _, errOut := runCmd(tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("greeter %s = exit %d, %q; want 2 and %q", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
	}
}

// serve --load-reports puts an ORCA load report in each call's trailer.
func TestServeLoadReports(t *testing.T) {
	addr, _, _ := startServe(t, "--load-reports", "100ms")
	code, _, errOut := runCmd("call", "--addr", addr, "-v")
	if code != 0 || !strings.Contains(errOut, "< trailer endpoint-load-metrics-bin: cpu_utilization=") || !strings.Contains(errOut, " in_flight_greetings=0") {
		t.Errorf("call -v against serve --load-reports = %d, %q; want the trailer's load report, decoded", code, errOut)
	}
	addr, _, _ = startServe(t)
	if _, _, errOut := runCmd("call", "--addr", addr, "-v"); strings.Contains(errOut, "endpoint-load-metrics-bin") {
		t.Errorf("call -v against serve without --load-reports = %q; want no load report", errOut)
	}
}
