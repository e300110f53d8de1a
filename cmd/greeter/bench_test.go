package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"go.uber.org/goleak"
)

// benchTestTimeout bounds every bench test: generous for a loaded machine.
const benchTestTimeout = 30 * time.Second

// checkLeaks checks, once the test and its other cleanups are done, that it
// left no goroutine behind. Call it first.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// runBenchJSON runs greeter bench with args and --json and decodes its
// report.
func runBenchJSON(t *testing.T, args ...string) (jsonReport, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTestTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append([]string{"bench", "--json"}, args...), &stdout, &stderr)
	if stderr.Len() > 0 {
		// Not a terminal, so no progress bar: stderr has only diagnostics.
		t.Errorf("stderr = %q, want nothing", stderr.String())
	}
	var rep jsonReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("greeter bench --json printed %q: %v", stdout.String(), err)
	}
	return rep, code
}

func TestBenchTotalJSON(t *testing.T) {
	checkLeaks(t)
	addr := serveAddr(t)
	rep, code := runBenchJSON(t, "--addr", addr, "--total", "300", "--concurrency", "8", "--connections", "2")
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
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
	for _, want := range []string{"Calls:     50 (50 OK, 0 failed)", "QPS:", "p50", "p90", "p99", "max", "Histogram:", "OK                 50"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr = %q, want no progress bar when not a terminal", stderr.String())
	}
}

func TestBenchServerDown(t *testing.T) {
	checkLeaks(t)
	// A port that was free a moment ago: nothing listens there.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	rep, code := runBenchJSON(t, "--addr", addr, "--total", "20", "--concurrency", "4", "--timeout", "2s")
	if code != 1 {
		t.Errorf("exit code = %d, want 1 when every call fails", code)
	}
	if rep.Count != 20 || rep.OK != 0 || rep.Errors["Unavailable"] != 20 {
		t.Errorf("count, ok, errors = %d, %d, %v; want 20, 0, map[Unavailable:20]", rep.Count, rep.OK, rep.Errors)
	}
}

func TestBenchRPS(t *testing.T) {
	checkLeaks(t)
	addr := serveAddr(t)
	rep, code := runBenchJSON(t, "--addr", addr, "--rps", "100", "--duration", "1s", "--concurrency", "4")
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
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
	rep, code := runBenchJSON(t, "--addr", addr, "--rps", "200", "--duration", "1s", "--concurrency", "2")
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
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
