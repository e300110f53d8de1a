package greeter_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestHealthPerService(t *testing.T) {
	srv := newServer(t)
	c := newClient(t, srv)
	hc := healthpb.NewHealthClient(c.Conn())
	ctx := testContext(t)
	check := func(svc string) (healthpb.HealthCheckResponse_ServingStatus, error) {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		return resp.GetStatus(), err
	}

	srv.Server.Health().SetServingStatus(greeter.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	if got, err := check(greeter.ServiceName); err != nil || got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check(Greeter) = %v, %v; want NOT_SERVING", got, err)
	}
	for _, svc := range []string{"", greeter.HelloworldServiceName} {
		if got, err := check(svc); err != nil || got != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) = %v, %v; want SERVING: status is per service", svc, got, err)
		}
	}
	if _, err := check("no.such.Service"); status.Code(err) != codes.NotFound {
		t.Fatalf("Check(unknown service) = %v, want NotFound", err)
	}
}

// countingBackend starts a TCP greeter server that counts the calls it serves.
func countingBackend(t *testing.T) (*greeter.Server, string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv, addr := startTCPGreeter(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			n.Add(1)
			return h(ctx, req)
		}))
	return srv, addr, &n
}

func TestClientHealthCheckingSteersAway(t *testing.T) {
	sickSrv, sick, sickCalls := countingBackend(t)
	_, well, wellCalls := countingBackend(t)
	sc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	c := twoBackendClient(t, sc, []string{sick, well})
	ctx := testContext(t)
	call := func() {
		t.Helper()
		if _, err := c.SayHello(ctx, "health"); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
	}
	for sickCalls.Load() == 0 || wellCalls.Load() == 0 {
		call()
	}

	sickSrv.Health().SetServingStatus(greeter.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	// The client learns of it over its Watch stream; wait until calls stop
	// reaching the sick backend, then check they keep away from it.
	for streak := 0; streak < 10; {
		before := sickCalls.Load()
		call()
		if sickCalls.Load() == before {
			streak++
		} else {
			streak = 0
		}
	}
	before := sickCalls.Load()
	for range 20 {
		call()
	}
	if got := sickCalls.Load() - before; got != 0 {
		t.Fatalf("%d of 20 calls went to the NOT_SERVING backend", got)
	}

	// And back once it is SERVING again.
	sickSrv.Health().SetServingStatus(greeter.ServiceName, healthpb.HealthCheckResponse_SERVING)
	for sickCalls.Load() == before {
		call()
	}
}
