package greeter_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// roundRobin is a service config that spreads calls over all backends,
// without retries so that every attempt a test sees is a hedge.
const roundRobin = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// twoBackendClient returns a client balancing round-robin over addrs
// through a resolver of the test's own, leaving grpc's global scheme alone.
func twoBackendClient(t *testing.T, serviceConfig string, addrs []string, opts ...greeter.ClientOption) *greeter.Client {
	t.Helper()
	r := manual.NewBuilderWithScheme("greetertest")
	var state resolver.State
	for _, a := range addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	base := []greeter.ClientOption{
		greeter.WithInsecure(),
		greeter.WithServiceConfig(serviceConfig),
		greeter.WithDialOptions(grpc.WithResolvers(r)),
	}
	c, err := greeter.NewClient("greetertest:///backends", append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHedgingReturnsAtFastBackendLatency(t *testing.T) {
	const delay = 50 * time.Millisecond
	var slowCalls, fastCalls, slowStarted, slowCancelled atomic.Int32
	slowCancel := make(chan struct{}, 16)
	_, slow := startTCPGreeter(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			slowCalls.Add(1)
			if req.(interface{ GetName() string }).GetName() == "warm-up" {
				return h(ctx, req)
			}
			slowStarted.Add(1)
			<-ctx.Done() // a backend that never answers in time
			slowCancelled.Add(1)
			slowCancel <- struct{}{}
			return nil, status.FromContextError(ctx.Err()).Err()
		}))
	_, fast := startTCPGreeter(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			fastCalls.Add(1)
			_ = grpc.SetHeader(ctx, metadata.Pairs("x-backend", "fast"))
			return h(ctx, req)
		}))
	c := twoBackendClient(t, roundRobin, []string{slow, fast}, greeter.WithHedging(greeter.HedgingPolicy{
		MaxAttempts:         2,
		HedgingDelay:        delay,
		NonFatalStatusCodes: []codes.Code{codes.Unavailable},
	}))
	ctx := testContext(t)

	// Until both backends are connected, round robin may send both
	// attempts to the same one.
	for slowCalls.Load() == 0 || fastCalls.Load() == 0 {
		if _, err := c.SayHello(ctx, "warm-up"); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}

	// Round robin alternates, so of two calls in a row at least one sends
	// its first attempt to the slow backend and must be saved by the hedge.
	for i := range 4 {
		var header metadata.MD
		start := time.Now()
		got, err := c.SayHello(ctx, "hedged", grpc.Header(&header))
		elapsed := time.Since(start)
		if err != nil || got != "Hello, hedged!" {
			t.Fatalf("call %d: SayHello = %q, %v", i, got, err)
		}
		if elapsed > delay+time.Second {
			t.Fatalf("call %d took %v, want about the fast backend's latency (hedging delay %v)", i, elapsed, delay)
		}
		if b := header.Get("x-backend"); len(b) != 1 || b[0] != "fast" {
			t.Fatalf("call %d: header x-backend = %q, want the winner's [fast]", i, b)
		}
	}
	if slowStarted.Load() == 0 {
		t.Fatal("no attempt went to the slow backend: the test proved nothing")
	}
	// Every losing attempt is cancelled: the slow handler sees its context
	// end for each attempt it got, long before the calls' deadline (the
	// test's context) could end it.
	bound := time.After(cancelBound)
	for range slowStarted.Load() {
		select {
		case <-slowCancel:
		case <-bound:
			t.Fatalf("slow backend: %d of %d losing attempts cancelled", slowCancelled.Load(), slowStarted.Load())
		}
	}
}

func TestHedgingNonFatalFailureHedgesAtOnce(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(1))...)
	c := newClient(t, srv, greeter.WithServiceConfig(""), greeter.WithHedging(greeter.HedgingPolicy{
		MaxAttempts:         3,
		HedgingDelay:        time.Hour, // only a non-fatal failure can start attempt 2
		NonFatalStatusCodes: []codes.Code{codes.Unavailable},
	}))
	got, err := c.SayHello(testContext(t), "again")
	if err != nil || got != "Hello, again!" {
		t.Fatalf("SayHello = %q, %v; want success on the second attempt", got, err)
	}
	if got, want := seen.take(), []string{"", "1"}; !slices.Equal(got, want) {
		t.Fatalf("attempts %q, want %q", got, want)
	}
}

func TestHedgingAllNonFatalReturnsLastFailure(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithFailFirst(10))...)
	c := newClient(t, srv, greeter.WithServiceConfig(""), greeter.WithHedging(greeter.HedgingPolicy{
		MaxAttempts:         3,
		HedgingDelay:        time.Hour,
		NonFatalStatusCodes: []codes.Code{codes.Unavailable},
	}))
	_, err := c.SayHello(testContext(t), "down")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("SayHello = %v, want Unavailable", err)
	}
	if got := len(seen.take()); got != 3 {
		t.Fatalf("server saw %d attempts, want MaxAttempts 3", got)
	}
}

func TestHedgingFatalCodeCommits(t *testing.T) {
	var seen attempts
	firstCancelled := make(chan struct{})
	srv := newServer(t, append(seen.serverOptions(), greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if len(metadata.ValueFromIncomingContext(ctx, "grpc-previous-rpc-attempts")) == 0 {
				<-ctx.Done() // the first attempt hangs
				close(firstCancelled)
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return nil, status.Error(codes.PermissionDenied, "no")
		}))...)
	// The third attempt would go out one delay after the second: the
	// second's answer must come back within that delay for the third never
	// to start, which 20ms was too short for on a loaded machine.
	c := newClient(t, srv, greeter.WithServiceConfig(""), greeter.WithHedging(greeter.HedgingPolicy{
		MaxAttempts:         3,
		HedgingDelay:        100 * time.Millisecond,
		NonFatalStatusCodes: []codes.Code{codes.Unavailable},
	}))
	ctx := testContext(t)
	if _, err := c.SayHello(ctx, "denied"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SayHello = %v, want the fatal PermissionDenied of the second attempt", err)
	}
	select {
	case <-firstCancelled:
	case <-time.After(cancelBound):
		t.Fatalf("the hanging first attempt was not cancelled within %v of the call's end", cancelBound)
	}
	if got := len(seen.take()); got != 2 {
		t.Fatalf("server saw %d attempts, want 2: a fatal code ends the call", got)
	}
}

func TestHedgingSharesOneDeadline(t *testing.T) {
	var seen attempts
	srv := newServer(t, append(seen.serverOptions(), greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}))...)
	c := newClient(t, srv, greeter.WithServiceConfig(""), greeter.WithHedging(greeter.HedgingPolicy{
		MaxAttempts:  3,
		HedgingDelay: 50 * time.Millisecond,
	}))
	const timeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(testContext(t), timeout)
	defer cancel()
	start := time.Now()
	_, err := c.SayHello(ctx, "slow")
	elapsed := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SayHello = %v, want DeadlineExceeded", err)
	}
	// One deadline over all attempts: not 3 x 300ms.
	if elapsed < timeout-10*time.Millisecond || elapsed > timeout+time.Second {
		t.Fatalf("call took %v, want about the call's timeout %v", elapsed, timeout)
	}
	if got := len(seen.take()); got != 3 {
		t.Fatalf("server saw %d attempts, want 3 (one every 50ms)", got)
	}
}

func TestHedgingValidates(t *testing.T) {
	for _, p := range []greeter.HedgingPolicy{{MaxAttempts: 1}, {MaxAttempts: 2, HedgingDelay: -time.Second}} {
		if c, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithHedging(p)); err == nil {
			c.Close()
			t.Errorf("NewClient(WithHedging(%+v)) succeeded, want an error", p)
		}
	}
}
