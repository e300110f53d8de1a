package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// benchTestTimeout bounds every bench test: generous for a loaded machine.
const benchTestTimeout = 30 * time.Second

// checkLeaks checks, once the test and its other cleanups are done, that it
// left no goroutine behind. Call it first.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// runBenchJSON runs greeter bench with args and --json and decodes its
// report. It expects a run that passes: exit 0 and nothing on stderr (not a
// terminal, so no progress bar, and no failure to report).
func runBenchJSON(t *testing.T, args ...string) jsonReport {
	t.Helper()
	rep, code, stderr := runBenchJSONFailing(t, args...)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	return rep
}

// runBenchJSONFailing runs greeter bench with args and --json and returns
// its decoded report, exit code and stderr.
func runBenchJSONFailing(t *testing.T, args ...string) (rep jsonReport, code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTestTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, append([]string{"bench", "--json"}, args...), &out, &errOut)
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("greeter bench --json printed %q: %v", out.String(), err)
	}
	return rep, code, errOut.String()
}

func TestBenchTotalJSON(t *testing.T) {
	checkLeaks(t)
	addr := serveAddr(t)
	rep := runBenchJSON(t, "--addr", addr, "--total", "300", "--concurrency", "8", "--connections", "2")
	if rep.Count != 300 || rep.OK != 300 || rep.StatusCode["OK"] != 300 {
		t.Errorf("count, ok, status_codes[OK] = %d, %d, %d; want 300 each", rep.Count, rep.OK, rep.StatusCode["OK"])
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors = %v, want none", rep.Errors)
	}
	if rep.DurationS <= 0 || rep.QPS <= 0 {
		t.Errorf("duration_s, qps = %v, %v; want both positive", rep.DurationS, rep.QPS)
	}
	l := rep.LatencyMs
	if !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency_ms = %+v, want 0 < min <= p50 <= p90 <= p99 <= max", l)
	}
	var sum int64
	for i, b := range rep.Histogram {
		sum += b.Count
		if i > 0 && b.LeMs < rep.Histogram[i-1].LeMs {
			t.Errorf("histogram bounds not increasing: %+v", rep.Histogram)
		}
	}
	if sum != 300 {
		t.Errorf("histogram counts add up to %d, want 300: %+v", sum, rep.Histogram)
	}
	if n := len(rep.Histogram); n == 0 || rep.Histogram[n-1].LeMs != l.Max {
		t.Errorf("histogram = %+v, want its last bound to be max %v", rep.Histogram, l.Max)
	}
}

func TestBenchText(t *testing.T) {
	checkLeaks(t)
	addr := serveAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), benchTestTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"bench", "--addr", addr, "--total", "50"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code = %d, want 0; stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"Calls:     50 (50 OK, 0 failed)", "QPS:       ", " OK calls/s\n", "p50", "p90", "p99", "max", "Histogram:", "OK                 50"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr = %q, want no progress bar when not a terminal", stderr.String())
	}
}

// deadAddr returns a port on 127.0.0.1 that was free a moment ago: nothing
// listens there.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestBenchServerDown checks that a run in which no call succeeds fails
// loudly: exit 1, the errors by code with a sample message, and no QPS or
// latency presented as a result.
func TestBenchServerDown(t *testing.T) {
	checkLeaks(t)
	addr := deadAddr(t)
	rep, code, stderr := runBenchJSONFailing(t, "--addr", addr, "--total", "20", "--concurrency", "4", "--timeout", "2s")
	if code != 1 {
		t.Errorf("exit code = %d, want 1 when every call fails", code)
	}
	if rep.Count != 20 || rep.OK != 0 || rep.Errors["Unavailable"] != 20 {
		t.Errorf("count, ok, errors = %d, %d, %v; want 20, 0, map[Unavailable:20]", rep.Count, rep.OK, rep.Errors)
	}
	if !strings.Contains(rep.ErrorSamples["Unavailable"], "connection refused") {
		t.Errorf("error_samples = %q; want Unavailable's message, saying the connection was refused", rep.ErrorSamples)
	}
	if rep.QPS != 0 || rep.LatencyMs != nil || len(rep.Histogram) != 0 {
		t.Errorf("qps %v, latency_ms %+v, histogram %v; want 0, none, none when no call succeeded", rep.QPS, rep.LatencyMs, rep.Histogram)
	}
	for _, want := range []string{"no call succeeded", "Unavailable 20"} {
		if !strings.Contains(rep.Failure, want) || !strings.Contains(stderr, want) {
			t.Errorf("failure %q, stderr %q; want both to say %q", rep.Failure, stderr, want)
		}
	}

	code, out, errOut := runCmd("bench", "--addr", addr, "--total", "20", "--concurrency", "4")
	if code != 1 || !strings.Contains(errOut, "FAIL: no call succeeded") {
		t.Errorf("text: exit %d, stderr %q; want 1 and FAIL: no call succeeded", code, errOut)
	}
	for _, want := range []string{"Calls:     20 (0 OK, 20 failed)", "no call succeeded, so no QPS or latency", "Unavailable        20  e.g. ", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"OK calls/s", "p50", "Histogram"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("text report shows %q though no call succeeded:\n%s", unwanted, out)
		}
	}
}

// TestBenchWrongService checks that a wrong --service, whose calls fail at
// once, reads as an error and not as a fast server.
func TestBenchWrongService(t *testing.T) {
	checkLeaks(t)
	addr := serveAddr(t)
	rep, code, stderr := runBenchJSONFailing(t, "--addr", addr, "--total", "50", "--service", "nope.Greeter")
	if code != 1 || rep.QPS != 0 || rep.Errors["Unimplemented"] != 50 {
		t.Errorf("exit %d, qps %v, errors %v; want 1, 0, map[Unimplemented:50]", code, rep.QPS, rep.Errors)
	}
	if !strings.Contains(rep.ErrorSamples["Unimplemented"], "nope.Greeter") || !strings.Contains(stderr, "Unimplemented 50") {
		t.Errorf("error_samples %q, stderr %q; want the unknown service named and the code counted", rep.ErrorSamples, stderr)
	}
}

// failEveryOther is a server interceptor that fails every second call with
// ResourceExhausted.
func failEveryOther() grpc.UnaryServerInterceptor {
	var n atomic.Int64
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if n.Add(1)%2 == 0 {
			return nil, status.Error(codes.ResourceExhausted, "test: every other call fails")
		}
		return h(ctx, req)
	}
}

// TestBenchMaxErrors checks --max-errors against a server failing half the
// calls, and that QPS and latency are of the OK calls.
func TestBenchMaxErrors(t *testing.T) {
	checkLeaks(t)
	_, addr := serveInProcess(t, greeter.WithGRPCServerOptions(grpc.ChainUnaryInterceptor(failEveryOther())))
	args := []string{"--addr", addr, "--total", "40", "--concurrency", "1"}
	tests := []struct {
		maxErrors []string
		wantCode  int
	}{
		{nil, 1}, // the default, 0: any failure fails the run
		{[]string{"--max-errors", "19"}, 1},
		{[]string{"--max-errors", "20"}, 0},
	}
	for _, tt := range tests {
		rep, code, stderr := runBenchJSONFailing(t, append(args, tt.maxErrors...)...)
		if code != tt.wantCode {
			t.Errorf("%v: exit %d, stderr %q; want %d", tt.maxErrors, code, stderr, tt.wantCode)
		}
		if rep.OK != 20 || rep.Errors["ResourceExhausted"] != 20 || rep.ErrorSamples["ResourceExhausted"] != "test: every other call fails" {
			t.Fatalf("%v: ok %d, errors %v, samples %q; want 20 OK and 20 ResourceExhausted with its message", tt.maxErrors, rep.OK, rep.Errors, rep.ErrorSamples)
		}
		if want := float64(rep.OK) / rep.DurationS; math.Abs(rep.QPS-want) > 1e-6*want || math.Abs(rep.CallsPerS-2*want) > 1e-6*want {
			t.Errorf("%v: qps %v, calls_per_s %v; want OK calls/s %v and twice that", tt.maxErrors, rep.QPS, rep.CallsPerS, want)
		}
		if n := histogramCount(rep); n != 20 {
			t.Errorf("%v: histogram counts %d calls, want the 20 OK ones", tt.maxErrors, n)
		}
		if failed := tt.wantCode != 0; failed != strings.Contains(stderr, "20 of 40 calls failed (ResourceExhausted 20), more than --max-errors") || failed != (rep.Failure != "") {
			t.Errorf("%v: stderr %q, failure %q; want the failure told when the run fails, only then", tt.maxErrors, stderr, rep.Failure)
		}
	}

	code, out, _ := runCmd(append([]string{"bench"}, args...)...)
	for _, want := range []string{"OK calls/s (", "calls/s with the failed ones)", "Latency of the OK calls:", "ResourceExhausted  20  e.g. test: every other call fails"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("text: exit %d, report lacks %q:\n%s", code, want, out)
		}
	}
}

func histogramCount(rep jsonReport) int64 {
	var n int64
	for _, b := range rep.Histogram {
		n += b.Count
	}
	return n
}

func TestBenchRPS(t *testing.T) {
	checkLeaks(t)
	addr := serveAddr(t)
	rep := runBenchJSON(t, "--addr", addr, "--rps", "100", "--duration", "1s", "--concurrency", "4")
	// Calls are due every 10ms, the first at once; the lower bound is
	// loose for a loaded machine.
	if rep.Count > 105 || rep.Count < 30 {
		t.Errorf("count = %d in 1s at --rps 100, want about 100 (30..105)", rep.Count)
	}
	if rep.DurationS < 0.95 {
		t.Errorf("duration_s = %v, want at least about 1", rep.DurationS)
	}
}

// TestBenchRPSCountsQueueing checks that --rps is open loop: against a
// server too slow for the rate with the callers given, calls wait for a
// free caller and their latency counts that wait, from their scheduled
// time, instead of the rate quietly dropping (coordinated omission).
func TestBenchRPSCountsQueueing(t *testing.T) {
	checkLeaks(t)
	_, addr := serveInProcess(t, greeter.WithDelay(50*time.Millisecond))
	// 2 callers at 50ms a call manage 40 calls a second of the 200 asked.
	rep := runBenchJSON(t, "--addr", addr, "--rps", "200", "--duration", "1s", "--concurrency", "2")
	if rep.TargetQPS != 200 || rep.QPS > 60 {
		t.Errorf("qps %v, target_qps %v; want at most about 40 of 200", rep.QPS, rep.TargetQPS)
	}
	// The last calls of the second were due long before a caller was
	// free: a closed loop would report about 50ms.
	if rep.LatencyMs.P99 < 300 {
		t.Errorf("latency p99 = %vms; want the queueing wait counted (hundreds of ms)", rep.LatencyMs.P99)
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--total", "10", "--duration", "1s"},
		{"--concurrency", "0"},
		{"--connections", "0"},
		{"--total", "0"},
		{"--rps", "-1"},
		{"--timeout", "0s"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bench", "--addr", "127.0.0.1:1"}, args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "greeter bench: --") {
			t.Errorf("greeter bench %v: exit %d, stderr %q; want 2 and the flag named", args, code, stderr.String())
		}
	}
}

// serveAddr serves a default greeter on 127.0.0.1:0 until the test ends.
func serveAddr(t *testing.T) string {
	t.Helper()
	_, addr := serveInProcess(t)
	return addr
}

// TestBenchInterrupted checks that calls cut short by an interrupt (ctx
// cancelled, as by SIGINT) are not counted as the server's failures.
func TestBenchInterrupted(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), benchTestTimeout)
	defer cancel()
	// The first 10 calls succeed; the 11th blocks until its caller goes
	// away, and the run is interrupted once it has arrived.
	var n atomic.Int64
	blocked := make(chan struct{})
	block := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if n.Add(1) <= 10 {
			return h(ctx, req)
		}
		close(blocked)
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	_, addr := serveInProcess(t, greeter.WithGRPCServerOptions(grpc.ChainUnaryInterceptor(block)))
	go func() {
		<-blocked
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"bench", "--json", "--addr", addr, "--total", "20", "--concurrency", "1"}, &stdout, &stderr)
	var rep jsonReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("greeter bench --json printed %q: %v", stdout.String(), err)
	}
	if code != 0 || rep.Count != 10 || rep.OK != 10 || len(rep.Errors) != 0 {
		t.Errorf("exit %d, count %d, ok %d, errors %v; want 0, 10, 10, none: the interrupted call is not counted", code, rep.Count, rep.OK, rep.Errors)
	}
	if !strings.Contains(stderr.String(), "greeter bench: interrupted after") {
		t.Errorf("stderr %q; want it to say the run was interrupted", stderr.String())
	}
}
