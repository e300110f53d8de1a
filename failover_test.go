package greeter_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// One of two backends stopped mid-load, with a short grace: a call still in
// flight on it when the grace runs out gets Unavailable; with greeter's
// retry policy, wait-for-ready and the second backend, no call fails.
func TestBackendStoppedMidLoad(t *testing.T) {
	ctx := testContext(t)
	entered := make(chan struct{}, 1)
	hold := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if md, _ := grpc.Method(ctx); md == "/Greeter/SayHelloAgain" { // the call caught in flight
			entered <- struct{}{}
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return h(ctx, req)
	})
	a := startCounted(t, hold)
	b := startCounted(t)

	r := manual.NewBuilderWithScheme("failover")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.addr}, {Addr: b.addr}}})
	sc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName) // round_robin, retries
	if err != nil {
		t.Fatal(err)
	}
	c, err := greeter.NewClient("failover:///greeters", greeter.WithInsecure(), greeter.WithServiceConfig(sc), greeter.WithDialOptions(grpc.WithResolvers(r)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	direct, err := greeter.NewClient(a.addr, greeter.WithInsecure(), greeter.WithServiceConfig("")) // no retries
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	inFlight := make(chan error, 1)
	go func() { _, err := direct.SayHelloAgain(ctx, "caught"); inFlight <- err }()
	<-entered

	stop := make(chan struct{})
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.SayHello(ctx, "load", grpc.WaitForReady(true))
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	for a.calls.Load() < 100 || b.calls.Load() < 100 { // the load reaches both
		select {
		case <-ctx.Done():
			t.Fatal("the load never reached both backends")
		case <-time.After(time.Millisecond):
		}
	}
	// Stop a with a short grace: the calls in flight finish, the one
	// that would not is cancelled when the grace runs out.
	grace, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_ = a.srv.Shutdown(grace)
	if err := <-inFlight; status.Code(err) != codes.Unavailable {
		t.Errorf("the call in flight on the stopped backend = %v; want Unavailable", err)
	}
	for n := b.calls.Load(); b.calls.Load() < n+500; { // load goes on, on b alone
		select {
		case <-ctx.Done():
			t.Fatal("the load stopped after a backend did")
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d calls failed though b was up; first: %v", f, calls.Load(), firstErr.Load())
	}
}

// A backend restarted on the same port is reached again within the
// client's reconnect backoff.
func TestClientReconnectsToRestartedServer(t *testing.T) {
	ctx := testContext(t)
	srv, addr := startTCPGreeter(t)
	bo := backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}
	c, err := greeter.NewClient(addr, greeter.WithInsecure(), greeter.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SayHello(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	hard, cancel := context.WithCancel(ctx)
	cancel()
	_ = srv.Shutdown(hard)
	// Down long enough for the client to fail a reconnect or two.
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.SayHello(dctx, "down", grpc.WaitForReady(true))
	dcancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a call while the server is down = %v; want DeadlineExceeded while waiting", err)
	}

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	again, err := greeter.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- again.Serve(lis) }()
	defer func() {
		_ = again.Shutdown(hard)
		<-served
	}()
	// The next reconnect comes within the backoff's longest wait, plus
	// jitter: well within MaxDelay × 1.2 and the loaded machine's slack.
	start := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, time.Duration(float64(bo.MaxDelay)*(1+bo.Jitter))+timeSlack)
	defer rcancel()
	if got, err := c.SayHello(rctx, "after", grpc.WaitForReady(true)); err != nil || got != "Hello, after!" {
		t.Fatalf("after the restart, SayHello = %q, %v (after %v); want the client back within its backoff", got, err, time.Since(start))
	}
}
