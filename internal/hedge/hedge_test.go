package hedge_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/hedge"
	"github.com/grpc-greeter/greeter/internal/wire"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// defaultTestTimeout bounds every test's context and wait.
const defaultTestTimeout = 10 * time.Second

// slack is what a wall-clock upper bound allows on a loaded machine.
const slack = time.Second

const method = "/Greeter/SayHello"

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// attemptOf is the attempt number a stub invoker is running, from the
// header the interceptor sends: 1 without it.
func attemptOf(t *testing.T, ctx context.Context) int {
	md, _ := metadata.FromOutgoingContext(ctx)
	v := md.Get(wire.PreviousAttemptsHeader)
	if len(v) == 0 {
		return 1
	}
	if len(v) > 1 {
		t.Errorf("attempt sent %s %q, want one value", wire.PreviousAttemptsHeader, v)
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		t.Errorf("attempt sent %s %q: %v", wire.PreviousAttemptsHeader, v[0], err)
	}
	return n + 1
}

// respond does what grpc does with the call options that write results
// back: header, trailer and peer name the attempt.
func respond(attempt int, opts []grpc.CallOption) {
	n := strconv.Itoa(attempt)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = metadata.Pairs("attempt", n)
		case grpc.TrailerCallOption:
			*o.TrailerAddr = metadata.Pairs("attempt", n)
		case grpc.PeerCallOption:
			*o.PeerAddr = peer.Peer{Addr: fakeAddr(n)}
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "fake" }
func (a fakeAddr) String() string  { return string(a) }

// stub is an invoker whose attempts do what do says; it records the
// attempts it started, in order.
type stub struct {
	t       *testing.T
	do      func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error
	mu      sync.Mutex
	started []int
	begun   chan int // each attempt's number as it starts
}

func newStub(t *testing.T, do func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error) *stub {
	return &stub{t: t, do: do, begun: make(chan int, 100)}
}

func (s *stub) invoke(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
	if m != method {
		s.t.Errorf("attempt invoked %q, want %q", m, method)
	}
	if r, ok := req.(*greeterpb.HelloRequest); !ok || r.GetName() != "hedge" {
		s.t.Errorf("attempt got request %v, want the caller's", req)
	}
	attempt := attemptOf(s.t, ctx)
	s.mu.Lock()
	s.started = append(s.started, attempt)
	s.mu.Unlock()
	s.begun <- attempt
	err := s.do(ctx, attempt, reply.(*greeterpb.HelloReply))
	respond(attempt, opts)
	return err
}

func (s *stub) attempts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.started...)
}

// call runs the interceptor for p on a fresh request and reply; a call
// still running after defaultTestTimeout fails the test.
func call(t *testing.T, ctx context.Context, p hedge.Policy, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) (*greeterpb.HelloReply, error) {
	t.Helper()
	reply := &greeterpb.HelloReply{}
	done := make(chan error, 1)
	go func() {
		done <- hedge.UnaryClientInterceptor(p)(ctx, method, &greeterpb.HelloRequest{Name: "hedge"}, reply, nil, invoker, opts...)
	}()
	select {
	case err := <-done:
		return reply, err
	case <-time.After(defaultTestTimeout):
		t.Fatalf("hedged call still running after %v", defaultTestTimeout)
		return nil, nil
	}
}

// ok answers an attempt with a reply naming it.
func ok(attempt int, reply *greeterpb.HelloReply) error {
	reply.Message = "attempt " + strconv.Itoa(attempt)
	return nil
}

// waitCancel blocks an attempt until the interceptor cancels it, and
// reports the context's error on cancelled.
func waitCancel(ctx context.Context, cancelled chan<- error) error {
	<-ctx.Done()
	cancelled <- ctx.Err()
	return status.FromContextError(ctx.Err()).Err()
}

func awaitCancelled(t *testing.T, cancelled <-chan error, n int) {
	t.Helper()
	for i := range n {
		select {
		case err := <-cancelled:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("a losing attempt ended with %v, want context.Canceled", err)
			}
		case <-time.After(defaultTestTimeout):
			t.Fatalf("%d of %d losing attempts not cancelled after %v", n-i, n, defaultTestTimeout)
		}
	}
}

// await receives from ch within defaultTestTimeout, or fails the test.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(defaultTestTimeout):
		t.Fatalf("no %s after %v", what, defaultTestTimeout)
		var zero T
		return zero
	}
}

func TestFirstOKWinsAndOthersAreCancelled(t *testing.T) {
	cancelled := make(chan error, 3)
	s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
		if attempt < 3 {
			return waitCancel(ctx, cancelled)
		}
		return ok(attempt, reply)
	})
	var header, trailer metadata.MD
	var p peer.Peer
	reply, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 3, Delay: time.Millisecond, NonFatal: []codes.Code{codes.Unavailable}},
		s.invoke, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	if err != nil || reply.GetMessage() != "attempt 3" {
		t.Fatalf("hedged call = %q, %v; want attempt 3's reply", reply.GetMessage(), err)
	}
	if got := header.Get("attempt"); len(got) != 1 || got[0] != "3" {
		t.Errorf("grpc.Header = %v, want the winner's (attempt 3)", header)
	}
	if got := trailer.Get("attempt"); len(got) != 1 || got[0] != "3" {
		t.Errorf("grpc.Trailer = %v, want the winner's (attempt 3)", trailer)
	}
	if p.Addr == nil || p.Addr.String() != "3" {
		t.Errorf("grpc.Peer = %v, want the winner's (attempt 3)", p.Addr)
	}
	awaitCancelled(t, cancelled, 2)
	if got := s.attempts(); len(got) != 3 {
		t.Errorf("attempts started: %v, want 3", got)
	}
}

func TestHedgesAfterDelay(t *testing.T) {
	const delay = 100 * time.Millisecond
	var mu sync.Mutex
	startedAt := map[int]time.Time{}
	cancelled := make(chan error, 1)
	s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
		mu.Lock()
		startedAt[attempt] = time.Now()
		mu.Unlock()
		if attempt == 1 {
			return waitCancel(ctx, cancelled) // no answer: the hedge must come
		}
		return ok(attempt, reply)
	})
	reply, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 2, Delay: delay}, s.invoke)
	if err != nil || reply.GetMessage() != "attempt 2" {
		t.Fatalf("hedged call = %q, %v; want attempt 2's reply", reply.GetMessage(), err)
	}
	awaitCancelled(t, cancelled, 1)
	mu.Lock()
	gap := startedAt[2].Sub(startedAt[1])
	mu.Unlock()
	if gap < delay || gap > delay+slack {
		t.Errorf("second attempt started %v after the first, want within [%v, %v]", gap, delay, delay+slack)
	}
}

func TestFatalCodeEndsAtOnce(t *testing.T) {
	t.Run("first attempt", func(t *testing.T) {
		s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
			return status.Error(codes.InvalidArgument, "bad name")
		})
		var trailer metadata.MD
		_, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 3, Delay: time.Hour, NonFatal: []codes.Code{codes.Unavailable}},
			s.invoke, grpc.Trailer(&trailer))
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("hedged call = %v, want InvalidArgument", err)
		}
		if got := s.attempts(); len(got) != 1 {
			t.Errorf("attempts started: %v, want only the first", got)
		}
		if got := trailer.Get("attempt"); len(got) != 1 || got[0] != "1" {
			t.Errorf("grpc.Trailer = %v, want attempt 1's", trailer)
		}
	})
	t.Run("hedged attempt", func(t *testing.T) {
		// The first attempt is still waiting when the second fails
		// for good: the call ends with the fatal code and the first
		// is cancelled.
		cancelled := make(chan error, 1)
		s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
			if attempt == 1 {
				return waitCancel(ctx, cancelled)
			}
			return status.Error(codes.PermissionDenied, "no")
		})
		var trailer metadata.MD
		_, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 2, Delay: 10 * time.Millisecond, NonFatal: []codes.Code{codes.Unavailable}},
			s.invoke, grpc.Trailer(&trailer))
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("hedged call = %v, want PermissionDenied", err)
		}
		if got := trailer.Get("attempt"); len(got) != 1 || got[0] != "2" {
			t.Errorf("grpc.Trailer = %v, want attempt 2's", trailer)
		}
		awaitCancelled(t, cancelled, 1)
	})
	t.Run("code not listed", func(t *testing.T) {
		// Unavailable is fatal when the policy does not name it.
		s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
			return status.Error(codes.Unavailable, "down")
		})
		_, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 3, Delay: time.Hour, NonFatal: []codes.Code{codes.Aborted}}, s.invoke)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("hedged call = %v, want Unavailable", err)
		}
		if got := s.attempts(); len(got) != 1 {
			t.Errorf("attempts started: %v, want only the first", got)
		}
	})
}

func TestNonFatalStartsNextAttemptAtOnce(t *testing.T) {
	// The delay is an hour: only a non-fatal failure can start the next
	// attempt before the test times out.
	s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
		switch attempt {
		case 1:
			return status.Error(codes.Unavailable, "down")
		case 2:
			return status.Error(codes.ResourceExhausted, "busy")
		}
		return ok(attempt, reply)
	})
	start := time.Now()
	var header metadata.MD
	reply, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 3, Delay: time.Hour, NonFatal: []codes.Code{codes.Unavailable, codes.ResourceExhausted}},
		s.invoke, grpc.Header(&header))
	if err != nil || reply.GetMessage() != "attempt 3" {
		t.Fatalf("hedged call = %q, %v; want attempt 3's reply", reply.GetMessage(), err)
	}
	if elapsed := time.Since(start); elapsed > slack {
		t.Errorf("call took %v, want under %v", elapsed, slack)
	}
	if got := s.attempts(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("attempts started: %v, want [1 2 3]", got)
	}
	if got := header.Get("attempt"); len(got) != 1 || got[0] != "3" {
		t.Errorf("grpc.Header = %v, want the winner's (attempt 3)", header)
	}
}

func TestMaxAttemptsBound(t *testing.T) {
	t.Run("all fail at once", func(t *testing.T) {
		s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
			return status.Errorf(codes.Unavailable, "attempt %d down", attempt)
		})
		var trailer metadata.MD
		reply, err := call(t, testContext(t), hedge.Policy{MaxAttempts: 4, Delay: time.Hour, NonFatal: []codes.Code{codes.Unavailable}},
			s.invoke, grpc.Trailer(&trailer))
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "attempt 4 down" {
			t.Fatalf("hedged call = %v, want the last attempt's Unavailable", err)
		}
		if reply.GetMessage() != "" {
			t.Errorf("reply = %q after a failure, want it untouched", reply.GetMessage())
		}
		if got := s.attempts(); len(got) != 4 {
			t.Errorf("attempts started: %v, want 4", got)
		}
		if got := trailer.Get("attempt"); len(got) != 1 || got[0] != "4" {
			t.Errorf("grpc.Trailer = %v, want attempt 4's", trailer)
		}
	})
	t.Run("no more hedges than MaxAttempts", func(t *testing.T) {
		const delay = time.Millisecond
		release := make(chan struct{})
		s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return status.Errorf(codes.Unavailable, "attempt %d down", attempt)
		})
		done := make(chan error, 1)
		ctx := testContext(t)
		go func() {
			done <- hedge.UnaryClientInterceptor(hedge.Policy{MaxAttempts: 3, Delay: delay, NonFatal: []codes.Code{codes.Unavailable}})(
				ctx, method, &greeterpb.HelloRequest{Name: "hedge"}, &greeterpb.HelloReply{}, nil, s.invoke)
		}()
		for range 3 {
			await(t, s.begun, "third attempt")
		}
		// A hundred delays go by with three attempts in flight: no
		// fourth may start.
		select {
		case a := <-s.begun:
			t.Errorf("attempt %d started, MaxAttempts is 3", a)
		case <-time.After(100 * delay):
		}
		close(release)
		if err := await(t, done, "hedged call's end"); status.Code(err) != codes.Unavailable {
			t.Fatalf("hedged call = %v, want Unavailable", err)
		}
		if got := s.attempts(); len(got) != 3 {
			t.Errorf("attempts started: %v, want 3", got)
		}
	})
}

func TestAttemptsCarryCallersMetadataAndOptions(t *testing.T) {
	type seen struct {
		md       metadata.MD
		waitFast bool
	}
	var mu sync.Mutex
	saw := map[int]seen{}
	invoker := func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		var wfr bool
		for _, o := range opts {
			if f, ok := o.(grpc.FailFastCallOption); ok && !f.FailFast {
				wfr = true
			}
		}
		attempt := attemptOf(t, ctx)
		mu.Lock()
		saw[attempt] = seen{md, wfr}
		mu.Unlock()
		if attempt < 3 {
			return status.Error(codes.Unavailable, "down")
		}
		return nil
	}
	ctx := metadata.AppendToOutgoingContext(testContext(t), "x-request-id", "r-1")
	if _, err := call(t, ctx, hedge.Policy{MaxAttempts: 3, Delay: time.Hour, NonFatal: []codes.Code{codes.Unavailable}}, invoker, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("hedged call: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for attempt := 1; attempt <= 3; attempt++ {
		s, ok := saw[attempt]
		if !ok {
			t.Errorf("attempt %d never ran", attempt)
			continue
		}
		if got := s.md.Get("x-request-id"); len(got) != 1 || got[0] != "r-1" {
			t.Errorf("attempt %d sent x-request-id %q, want the caller's [r-1]", attempt, got)
		}
		prev := s.md.Get(wire.PreviousAttemptsHeader)
		switch {
		case attempt == 1 && len(prev) != 0:
			t.Errorf("first attempt sent %s %q, want none", wire.PreviousAttemptsHeader, prev)
		case attempt > 1 && (len(prev) != 1 || prev[0] != strconv.Itoa(attempt-1)):
			t.Errorf("attempt %d sent %s %q, want [%d]", attempt, wire.PreviousAttemptsHeader, prev, attempt-1)
		}
		if !s.waitFast {
			t.Errorf("attempt %d lost the caller's WaitForReady option", attempt)
		}
	}
}

func TestReplyIsTheWinnersAlone(t *testing.T) {
	// Every attempt writes its own reply, and the caller's reply becomes
	// the winner's whole, as grpc's own unmarshalling would make it: no
	// loser's fields, nothing left of what the caller's reply held.
	release := make(chan struct{})
	cancelled := make(chan error, 1)
	s := newStub(t, func(ctx context.Context, attempt int, reply *greeterpb.HelloReply) error {
		if attempt == 1 {
			reply.Message = "loser's half-written reply"
			close(release)
			return waitCancel(ctx, cancelled)
		}
		<-release
		return nil // an empty reply
	})
	reply := &greeterpb.HelloReply{Message: "left over from the caller's last call"}
	done := make(chan error, 1)
	ctx := testContext(t)
	go func() {
		done <- hedge.UnaryClientInterceptor(hedge.Policy{MaxAttempts: 2, Delay: time.Millisecond})(
			ctx, method, &greeterpb.HelloRequest{Name: "hedge"}, reply, nil, s.invoke)
	}()
	err := await(t, done, "hedged call's end")
	if err != nil || reply.GetMessage() != "" {
		t.Fatalf("hedged call = %q, %v; want attempt 2's empty reply", reply.GetMessage(), err)
	}
	awaitCancelled(t, cancelled, 1)
}

func TestNonProtoReplyIsNotHedged(t *testing.T) {
	var calls int
	var header metadata.MD
	invoker := func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		calls++
		if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get(wire.PreviousAttemptsHeader)) != 0 {
			t.Errorf("a single call sent %s", wire.PreviousAttemptsHeader)
		}
		respond(1, opts) // the caller's own options reach the invoker
		*reply.(*string) = "raw"
		return status.Error(codes.Unavailable, "down")
	}
	var reply string
	err := hedge.UnaryClientInterceptor(hedge.Policy{MaxAttempts: 3, Delay: time.Hour, NonFatal: []codes.Code{codes.Unavailable}})(
		testContext(t), method, "req", &reply, nil, invoker, grpc.Header(&header))
	if status.Code(err) != codes.Unavailable || calls != 1 || reply != "raw" {
		t.Fatalf("call = %v after %d invocations, reply %q; want one plain call", err, calls, reply)
	}
	if got := header.Get("attempt"); len(got) != 1 {
		t.Errorf("grpc.Header = %v, want the invoker's", header)
	}
}
