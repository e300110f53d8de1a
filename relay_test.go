package greeter_test

import (
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
	"google.golang.org/grpc/status"
)

// hop is one greeter server of a relay chain on 127.0.0.1, with what its
// handlers saw.
type hop struct {
	name string
	addr string
	srv  *greeter.Server

	mu      sync.Mutex
	calls   []hopCall
	entered chan struct{} // each call's start
	ended   chan hopCall  // each call's context end
}

type hopCall struct {
	deadline time.Time // zero: none
	endErr   error     // the handler context's error at its end
	endAt    time.Time
}

// startHop serves a greeter built with opts on 127.0.0.1:0 until the test
// ends, recording each unary call's deadline and the end of its context, as
// an interceptor sees them: outside the service's handler and its deadline
// guard, so before any server policy.
func startHop(t *testing.T, name string, opts ...greeter.ServerOption) *hop {
	t.Helper()
	h := &hop{name: name, entered: make(chan struct{}, 16), ended: make(chan hopCall, 16)}
	record := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		var c hopCall
		c.deadline, _ = ctx.Deadline()
		h.mu.Lock()
		h.calls = append(h.calls, c)
		h.mu.Unlock()
		h.entered <- struct{}{}
		context.AfterFunc(ctx, func() {
			c.endErr, c.endAt = ctx.Err(), time.Now()
			h.ended <- c
		})
		return next(ctx, req)
	})
	srv, err := greeter.NewServer(append([]greeter.ServerOption{record}, opts...)...)
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
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("%s: Shutdown: %v (a handler outlived its call)", name, err)
		}
		if err := <-served; err != nil {
			t.Errorf("%s: Serve: %v", name, err)
		}
		if n := srv.Overruns(); n != 0 {
			t.Errorf("%s: %d handlers ran on after their context ended", name, n)
		}
	})
	h.addr, h.srv = lis.Addr().String(), srv
	return h
}

func (h *hop) seen() []hopCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hopCall(nil), h.calls...)
}

func dialHop(t *testing.T, h *hop, opts ...greeter.ClientOption) *greeter.Client {
	t.Helper()
	c, err := greeter.NewClient(h.addr, append([]greeter.ClientOption{greeter.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRelayChain is a 3-hop chain: client → A → B → C on 127.0.0.1, 150ms
// of work at A, B working until its context ends. A works, then passes B
// what is left minus its reply reserve; B's context ends with
// DeadlineExceeded (B's guard says so in its log) and A answers in its
// reserve with B's error: the client gets DeadlineExceeded within its
// budget, C is never called, and no handler outlives its call. A's reserve
// is timeSlack, the margin a loaded machine needs to get B's answer back to
// A and A's to the client: it is the reserve's job to leave that time.
func TestRelayChain(t *testing.T) {
	ctx := testContext(t)
	const (
		work    = 150 * time.Millisecond
		reserve = timeSlack
		// B gets budget-work-reserve (150ms) less A's lateness.
		budget = reserve + 2*work
	)
	logsB := newLogRecorder()
	guarded := greeter.WithServerDeadlines(greeter.DeadlinePolicy{})
	c := startHop(t, "C", guarded)
	b := startHop(t, "B", guarded, greeter.WithLogger(logsB.logger()), greeter.WithDelay(workForever), greeter.WithUpstream(dialHop(t, c)))
	a := startHop(t, "A", guarded, greeter.WithDelay(work), greeter.WithUpstream(dialHop(t, b)), greeter.WithReplyReserve(reserve))
	client := dialHop(t, a)

	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	start := time.Now()
	_, err := client.SayHello(cctx, "chain")
	elapsed := time.Since(start)
	de := deadlineError(t, err, codes.DeadlineExceeded)
	assertWithin(t, "time to DeadlineExceeded", elapsed, work, budget)
	t.Logf("client: %v", err)
	if de.Source != greeter.SourceCaller || de.Phase != greeter.PhaseServer {
		t.Errorf("Source %v, Phase %v; want caller's context, on the server", de.Source, de.Phase)
	}
	if !strings.Contains(de.Detail, "greeter relay: /Greeter/SayHello: upstream deadline exceeded") {
		t.Errorf("Detail = %q; want A's explanation of B's deadline (A answered in its reserve)", de.Detail)
	}
	// B's own log says its call ran out of time, not that it was cancelled.
	r := logsB.await(ctx, t, "deadline exceeded")
	if m := logAttr(r, "method"); m != "/Greeter/SayHello" {
		t.Errorf("B logged the deadline of %q; want /Greeter/SayHello", m)
	}
	for _, h := range []*hop{a, b} {
		select {
		case end := <-h.ended:
			if end.endAt.Sub(start) > budget+timeSlack {
				t.Errorf("%s: call's context ended %v after the call began; want within the budget", h.name, end.endAt.Sub(start))
			}
			t.Logf("%s: context ended after %v: %v", h.name, end.endAt.Sub(start).Round(time.Millisecond), end.endErr)
		case <-ctx.Done():
			t.Fatalf("%s: call's context never ended", h.name)
		}
	}
	sa, sb := a.seen(), b.seen()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("A saw %d calls, B %d; want 1 each", len(sa), len(sb))
	}
	// B got A's deadline less the reserve, not a fresh budget. grpc-timeout
	// travels as a duration, so B's deadline is later by the time the
	// header took to arrive: timeSlack on a loaded machine.
	if got, want := sb[0].deadline, sa[0].deadline.Add(-reserve); got.IsZero() || got.After(want.Add(timeSlack)) {
		t.Errorf("B's deadline %v after A's; want A's less the %v reserve", sb[0].deadline.Sub(sa[0].deadline), reserve)
	}
	if n := len(c.seen()); n != 0 {
		t.Errorf("C was called %d times; B was still working when its budget ran out", n)
	}
}

func TestRelayCancelsUpstream(t *testing.T) {
	ctx := testContext(t)
	up := startHop(t, "upstream", greeter.WithDelay(workForever))
	relay := startHop(t, "relay", greeter.WithUpstream(dialHop(t, up)))
	client := dialHop(t, relay)

	cctx, cancel := context.WithCancel(bareContext(t))
	res := make(chan error, 1)
	go func() { _, err := client.SayHello(cctx, "you"); res <- err }()
	// Wait until the call has reached the upstream, then leave.
	select {
	case <-up.entered:
	case <-ctx.Done():
		t.Fatal("call never reached the upstream")
	}
	cancel()
	deadlineError(t, <-res, codes.Canceled)
	select {
	case end := <-up.ended:
		if end.endErr != context.Canceled {
			t.Errorf("upstream handler's context ended with %v; want context.Canceled", end.endErr)
		}
	case <-ctx.Done():
		t.Fatal("upstream handler's context never ended after the caller left")
	}
}

func TestRelayReserve(t *testing.T) {
	ctx := testContext(t)
	up := startHop(t, "upstream")
	relay := startHop(t, "relay", greeter.WithUpstream(dialHop(t, up)), greeter.WithReplyReserve(200*time.Millisecond))
	client := dialHop(t, relay)

	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := client.SayHello(cctx, "you")
	deadlineError(t, err, codes.DeadlineExceeded)
	if cctx.Err() != nil {
		t.Errorf("relay answered after the caller's deadline; want at once")
	}
	if n := len(up.seen()); n != 0 {
		t.Errorf("upstream called %d times with less budget than the reserve", n)
	}

	// With time to spare the relay answers with the upstream's reply.
	got, err := client.SayHelloAgain(ctx, "you")
	if err != nil || got != "Hello again, you!" {
		t.Errorf("SayHelloAgain via relay = %q, %v; want the upstream's greeting", got, err)
	}
	stream, err := client.SayHelloStreamReply(ctx, "you")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(recvAll(t, stream)); n != greeter.DefaultStreamReplies {
		t.Errorf("stream via relay gave %d replies; want %d", n, greeter.DefaultStreamReplies)
	}

	bidi, err := client.SayHelloBidiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c"}
	for _, name := range names {
		if err := bidi.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
			t.Fatalf("Send via relay: %v", err)
		}
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var greetings []string
	for {
		r, err := bidi.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bidi via relay: %v", err)
		}
		greetings = append(greetings, r.GetMessage())
	}
	if len(greetings) != 3 || greetings[2] != "Hello, c!" {
		t.Errorf("bidi via relay = %q; want one greeting per name", greetings)
	}
}

func TestRelayBidiDeadline(t *testing.T) {
	ctx := testContext(t)
	up := startHop(t, "upstream", greeter.WithDelay(workForever))
	relay := startHop(t, "relay", greeter.WithUpstream(dialHop(t, up)))
	client := dialHop(t, relay)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	bidi, err := client.SayHelloBidiStream(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&greeterpb.HelloRequest{Name: "you"}); err != nil {
		t.Fatal(err)
	}
	_, err = bidi.Recv()
	deadlineError(t, err, codes.DeadlineExceeded)
}

// TestRelayStopsRetriesMultiplying checks that an upstream failure the
// relay's own client has retried is not retried again by the relay's
// caller: with grpc's retry policy on both hops, the relay sees one call.
func TestRelayStopsRetriesMultiplying(t *testing.T) {
	ctx := testContext(t)
	up := startHop(t, "upstream", greeter.WithFailFirst(100)) // every attempt fails Unavailable
	relay := startHop(t, "relay", greeter.WithUpstream(dialHop(t, up)))
	client := dialHop(t, relay) // DefaultServiceConfig: retries Unavailable

	_, err := client.SayHello(ctx, "you")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "greeter relay: /Greeter/SayHello: upstream") {
		t.Fatalf("SayHello = %v; want the relay's Unavailable from upstream", err)
	}
	if n, m := len(relay.seen()), len(up.seen()); n != 1 || m != 4 {
		t.Errorf("relay saw %d calls, upstream %d; want 1 and 4 (the relay's client retries, its caller does not)", n, m)
	}
}

// A relay whose upstream cannot be reached tells its caller what failed,
// not where the upstream is: the address and the cause go to its log.
func TestRelayUnreachableUpstreamSaysNoAddress(t *testing.T) {
	ctx := testContext(t)
	addr := closedAddr(t)
	up, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	logs := newLogRecorder()
	relay := startHop(t, "relay", greeter.WithUpstream(up), greeter.WithLogger(logs.logger()))

	_, err = dialHop(t, relay).SayHello(ctx, "you")
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unavailable || !strings.Contains(msg, "upstream unavailable") || strings.Contains(msg, addr) || strings.Contains(msg, "127.0.0.1") {
		t.Errorf("SayHello via relay = %v; want Unavailable saying the upstream is unavailable, without its address", err)
	}
	r := logs.await(ctx, t, "upstream unreachable")
	if c := logAttr(r, "connection"); !strings.Contains(c, addr) || !strings.Contains(c, "connection refused") {
		t.Errorf("relay's log connection = %q; want the address and the cause", c)
	}
}

// Two relays pointing at each other: the call is refused as a loop after a
// bounded number of hops, at once, with a code and message that say so.
func TestRelayLoopRefused(t *testing.T) {
	ctx := testContext(t)
	la, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr string) *greeter.Client {
		c, err := greeter.NewClient(addr, greeter.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var calls atomic.Int64
	count := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return h(ctx, req)
	})
	for _, p := range []struct {
		lis      net.Listener
		upstream string
	}{{la, lb.Addr().String()}, {lb, la.Addr().String()}} {
		srv, err := greeter.NewServer(count, greeter.WithUpstream(dial(p.upstream)))
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(p.lis) }()
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}

	_, err = dial(la.Addr().String()).SayHello(ctx, "loop")
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(msg, "relay loop") || !strings.Contains(msg, "8 relays") {
		t.Fatalf("SayHello through a loop = %v; want FailedPrecondition saying relay loop and the hop count", err)
	}
	if n := calls.Load(); n != 9 {
		t.Errorf("the relays served %d calls; want 9: the first and 8 hops", n)
	}
}
