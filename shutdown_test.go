package greeter_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestShutdownFinishesInFlightAndRefusesNew(t *testing.T) {
	const inFlight = 100
	release := make(chan struct{})
	started := make(chan struct{}, inFlight)
	srv := newServer(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if req.(*greeterpb.HelloRequest).GetName() == "in flight" {
				started <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					return nil, status.FromContextError(ctx.Err()).Err()
				}
			}
			return h(ctx, req)
		}))
	c := newClient(t, srv)
	ctx := testContext(t)

	// Watch health as a load balancer would.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := healthpb.NewHealthClient(c.Conn()).Watch(wctx, &healthpb.HealthCheckRequest{Service: greeter.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before shutdown = %v, %v; want SERVING", r.GetStatus(), err)
	}

	stream := openBidi(t, ctx, c)
	results := make(chan error, inFlight)
	for range inFlight {
		go func() {
			_, err := c.SayHello(ctx, "in flight")
			results <- err
		}()
	}
	for range inFlight {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the in-flight calls never all started")
		}
	}

	shut := make(chan error, 1)
	go func() { shut <- srv.Server.Shutdown(ctx) }()

	// Health turns NOT_SERVING at once...
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after Shutdown began = %v, %v; want NOT_SERVING", r.GetStatus(), err)
	}
	stopWatch() // a watch is a call in flight too: end it, as a balancer would

	// ...the server sends GOAWAY, which moves the client's connection out
	// of READY, and new calls are refused.
	if !c.Conn().WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("connection still READY after Shutdown began")
	}
	if _, err := c.SayHello(ctx, "too late"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after Shutdown began = %v, want Unavailable", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with calls in flight", err)
	default:
	}

	// The in-flight stream keeps working until the client ends it.
	if err := stream.Send(&greeterpb.HelloRequest{Name: "still here"}); err != nil {
		t.Fatalf("Send during shutdown: %v", err)
	}
	if r, err := stream.Recv(); err != nil || r.GetMessage() != "Hello, still here!" {
		t.Fatalf("Recv during shutdown = %q, %v", r.GetMessage(), err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end = %v, want io.EOF", err)
	}

	// And all in-flight unary calls complete.
	close(release)
	for i := range inFlight {
		if err := <-results; err != nil {
			t.Fatalf("in-flight call %d failed: %v", i, err)
		}
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
	case <-time.After(defaultTestTimeout):
		t.Fatal("Shutdown did not return after the last call finished")
	}
}
