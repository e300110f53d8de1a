package loadreport

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const defaultTestTimeout = 10 * time.Second

// Calls to the named services are counted in flight and, once a sample
// has run, in the rate; others are not.
func TestCounts(t *testing.T) {
	r := New(10*time.Millisecond, []string{"Greeter"})
	defer r.Stop()
	unary := r.UnaryServerInterceptor()
	var inside int64
	handler := func(ctx context.Context, req any) (any, error) {
		inside = r.inFlight.Load()
		return nil, nil
	}
	if _, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/Greeter/SayHello"}, handler); err != nil {
		t.Fatal(err)
	}
	if inside != 1 {
		t.Errorf("in flight during a greeting = %v; want 1", inside)
	}
	if _, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}, handler); err != nil {
		t.Fatal(err)
	}
	if inside != 0 {
		t.Errorf("in flight during a health check = %v; want 0: only greetings count", inside)
	}
	if got := r.served.Load(); got != 1 {
		t.Errorf("served = %d; want 1", got)
	}
	deadline := time.After(defaultTestTimeout)
	for r.Recorder().ServerMetrics().QPS <= 0 {
		select {
		case <-deadline:
			t.Fatal("no sample counted the greeting")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if cpu := r.Recorder().ServerMetrics().CPUUtilization; cpu < 0 {
		t.Errorf("CPU utilization = %v; want measured", cpu)
	}
}
