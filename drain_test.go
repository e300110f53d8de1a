package greeter_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// counted serves a greeter on 127.0.0.1 that counts the Greeter calls it
// serves.
type counted struct {
	srv   *greeter.Server
	addr  string
	calls atomic.Int64
}

func startCounted(t *testing.T, opts ...greeter.ServerOption) *counted {
	t.Helper()
	c := &counted{}
	count := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		c.calls.Add(1)
		return h(ctx, req)
	})
	c.srv, c.addr = startTCPGreeter(t, append(opts, count)...)
	return c
}

// During the drain delay a stopping server says NOT_SERVING to every probe,
// new ones included, and goes on serving; a client with client-side health
// checking moves its calls to the other backend without losing one; then
// the server stops, its health Watch streams ended rather than pinning it.
func TestDrainDelayMovesTrafficFirst(t *testing.T) {
	ctx := testContext(t)
	const drain = 2 * time.Second
	a := startCounted(t, greeter.WithDrainDelay(drain))
	b := startCounted(t)

	r := manual.NewBuilderWithScheme("drain")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.addr}, {Addr: b.addr}}})
	sc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := greeter.NewClient("drain:///greeters", greeter.WithInsecure(), greeter.WithServiceConfig(sc), greeter.WithDialOptions(grpc.WithResolvers(r)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for a.calls.Load() == 0 || b.calls.Load() == 0 { // round_robin reaches both
		if _, err := c.SayHello(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
	}

	// A probe of a's own, as a load balancer keeps.
	probe, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	watch, err := healthpb.NewHealthClient(probe).Watch(ctx, &healthpb.HealthCheckRequest{Service: greeter.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch before shutdown = %v, %v", r, err)
	}

	start := time.Now()
	shut := make(chan error, 1)
	go func() { shut <- a.srv.Shutdown(ctx) }()
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch after Shutdown began = %v, %v; want NOT_SERVING", r, err)
	}

	// A new connection is accepted, and told NOT_SERVING.
	fresh, err := net.Dial("tcp", a.addr)
	if err != nil {
		t.Fatalf("a new connection during the drain delay: %v; want it accepted", err)
	}
	fresh.Close()
	late, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if r, err := healthpb.NewHealthClient(late).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("a new probe during the drain delay = %v, %v; want NOT_SERVING", r, err)
	}

	// The client's calls move to b, and none fails meanwhile.
	onB := 0
	for onB < 20 {
		before := b.calls.Load()
		if _, err := c.SayHello(ctx, "moving"); err != nil {
			t.Fatalf("a call during the drain delay failed: %v", err)
		}
		if b.calls.Load() > before {
			onB++
		} else {
			onB = 0 // it reached a: the client has not seen NOT_SERVING yet
		}
	}
	if d := time.Since(start); d >= drain {
		t.Fatalf("the client took %v to move off a; the drain delay was only %v (test too slow to judge)", d, drain)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before its drain delay", err)
	default:
	}

	// Then a stops: the Watch stream ends instead of pinning it.
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v; want nil after a clean drain", err)
	}
	if d := time.Since(start); d < drain {
		t.Errorf("Shutdown returned after %v; want the %v drain delay first", d, drain)
	}
	if _, err := watch.Recv(); err == nil {
		t.Error("the health Watch stream outlived the server")
	}
}
