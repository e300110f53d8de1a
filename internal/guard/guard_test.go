package guard_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/guard"
	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	sayHello      = greeterpb.Greeter_SayHello_FullMethodName
	sayHelloAgain = greeterpb.Greeter_SayHelloAgain_FullMethodName
	streamReply   = greeterpb.Greeter_SayHelloStreamReply_FullMethodName
)

var hello = &greeterpb.HelloRequest{Name: "guard"}

// The guard's log messages.
const (
	logDeadline     = "deadline exceeded"
	logCanceled     = "call canceled by the caller"
	logRefused      = "call refused: budget below minimum"
	logStillRunning = "handler still running after its context ended"
	logReturnedLate = "handler returned late, after its context ended"
	logStuck        = "shutdown: grace period over, stopping handlers still running"
)

// wantServerDeadline fails the test unless err is DeadlineExceeded with the
// guard's ErrorInfo: reason, and metadata key = value.
func wantServerDeadline(t *testing.T, err error, reason, key, value string) {
	t.Helper()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call = %v, want DeadlineExceeded with reason %s", err, reason)
	}
	ei := errorInfo(err)
	if ei == nil {
		t.Fatalf("call = %v: no ErrorInfo, want reason %s", err, reason)
	}
	if ei.GetDomain() != wire.ErrorInfoDomain || ei.GetReason() != reason || ei.GetMetadata()[key] != value {
		t.Fatalf("call = %v: ErrorInfo %v, want domain %q, reason %q, metadata %s=%s", err, ei, wire.ErrorInfoDomain, reason, key, value)
	}
}

// deadlineLeft reports how long a handler's context has left, -1 without
// a deadline.
func deadlineLeft(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return -1
	}
	return time.Until(dl)
}

// reportLeft is a handler that reports its deadline on left and answers.
func reportLeft(left chan<- time.Duration) func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
		left <- deadlineLeft(ctx)
		return &greeterpb.HelloReply{Message: "Hello, " + r.GetName()}, nil
	}
}

// untilDone is a handler that waits for its context to end, reports its
// error on ctxErr, and returns the status grpc makes of it.
func untilDone(ctxErr chan<- error) func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return func(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
		<-ctx.Done()
		ctxErr <- ctx.Err()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func TestDefaultDeadline(t *testing.T) {
	t.Run("handler sees it", func(t *testing.T) {
		const dflt = 5 * time.Second
		left := make(chan time.Duration, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: time.Second}, &stubGreeter{unary: reportLeft(left)})
		ctx, _ := noDeadline(t)
		var trailer metadata.MD
		if _, err := s.c.SayHello(ctx, hello, grpc.Trailer(&trailer)); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := <-left; got > dflt || got < dflt-slack {
			t.Errorf("handler's deadline %v away, want within [%v, %v]", got, dflt-slack, dflt)
		}
		if got := trailer.Get(wire.TrailerDeadlineCap); len(got) != 0 {
			t.Errorf("trailer %s = %q for a default, want none", wire.TrailerDeadlineCap, got)
		}
	})
	t.Run("caller's deadline kept", func(t *testing.T) {
		// The default is for calls without a deadline: a caller's
		// longer or shorter one stands.
		left := make(chan time.Duration, 2)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: 2 * time.Second}, Grace: time.Second}, &stubGreeter{unary: reportLeft(left)})
		if _, err := s.c.SayHello(testContext(t), hello); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := <-left; got > defaultTestTimeout || got < defaultTestTimeout-slack {
			t.Errorf("handler's deadline %v away, want the caller's %v", got, defaultTestTimeout)
		}
		ctx, cancel := context.WithTimeout(testContext(t), time.Second)
		defer cancel()
		if _, err := s.c.SayHello(ctx, hello); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := <-left; got > time.Second || got < 0 {
			t.Errorf("handler's deadline %v away, want the caller's 1s", got)
		}
	})
	t.Run("runs out", func(t *testing.T) {
		const dflt = 50 * time.Millisecond
		ctxErr := make(chan error, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: time.Second}, &stubGreeter{unary: untilDone(ctxErr)})
		ctx, _ := noDeadline(t)
		start := time.Now()
		_, err := s.c.SayHello(ctx, hello)
		elapsed := time.Since(start)
		wantServerDeadline(t, err, wire.ReasonServerDefault, wire.MetaDefault, "50ms")
		if got := <-ctxErr; got != context.DeadlineExceeded {
			t.Errorf("handler's ctx.Err() = %v, want context.DeadlineExceeded", got)
		}
		if elapsed < dflt || elapsed > dflt+slack {
			t.Errorf("call ended after %v, want within [%v, %v]", elapsed, dflt, dflt+slack)
		}
		rec := s.logs.await(t, logDeadline)
		if rec.level != slog.LevelInfo || rec.attrs["method"].String() != sayHello || rec.attrs["budget_from"].String() != "server default" {
			t.Errorf("log %q at %v %v, want Info with method %s, budget_from server default", rec.msg, rec.level, rec.attrs, sayHello)
		}
	})
}

func TestMaxCapsLongerDeadline(t *testing.T) {
	t.Run("deadline shortened, trailer says so", func(t *testing.T) {
		const limit = 2 * time.Second
		left := make(chan time.Duration, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Max: limit}, Grace: time.Second}, &stubGreeter{unary: reportLeft(left)})
		var trailer metadata.MD
		if _, err := s.c.SayHello(testContext(t), hello, grpc.Trailer(&trailer)); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := <-left; got > limit || got < limit-slack {
			t.Errorf("handler's deadline %v away, want within [%v, %v]", got, limit-slack, limit)
		}
		if got := trailer.Get(wire.TrailerDeadlineCap); len(got) != 1 || got[0] != "2s" {
			t.Errorf("trailer %s = %q, want [2s]", wire.TrailerDeadlineCap, got)
		}
	})
	t.Run("runs out", func(t *testing.T) {
		ctxErr := make(chan error, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Max: 50 * time.Millisecond}, Grace: time.Second}, &stubGreeter{unary: untilDone(ctxErr)})
		ctx := testContext(t)
		var trailer metadata.MD
		_, err := s.c.SayHello(ctx, hello, grpc.Trailer(&trailer))
		wantServerDeadline(t, err, wire.ReasonServerCap, wire.MetaCap, "50ms")
		if ctx.Err() != nil {
			t.Errorf("the caller's own deadline passed too: the test proves nothing")
		}
		if got := trailer.Get(wire.TrailerDeadlineCap); len(got) != 1 || got[0] != "50ms" {
			t.Errorf("trailer %s = %q, want [50ms]", wire.TrailerDeadlineCap, got)
		}
		if got := <-ctxErr; got != context.DeadlineExceeded {
			t.Errorf("handler's ctx.Err() = %v, want context.DeadlineExceeded", got)
		}
		if rec := s.logs.await(t, logDeadline); rec.attrs["budget_from"].String() != "server cap" {
			t.Errorf("log %q %v, want budget_from server cap", rec.msg, rec.attrs)
		}
	})
	t.Run("shorter deadline untouched", func(t *testing.T) {
		left := make(chan time.Duration, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Max: 5 * time.Second}, Grace: time.Second}, &stubGreeter{unary: reportLeft(left)})
		ctx, cancel := context.WithTimeout(testContext(t), time.Second)
		defer cancel()
		var trailer metadata.MD
		if _, err := s.c.SayHello(ctx, hello, grpc.Trailer(&trailer)); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := <-left; got > time.Second || got < 0 {
			t.Errorf("handler's deadline %v away, want the caller's 1s", got)
		}
		if got := trailer.Get(wire.TrailerDeadlineCap); len(got) != 0 {
			t.Errorf("trailer %s = %q on an uncapped call, want none", wire.TrailerDeadlineCap, got)
		}
	})
	t.Run("no deadline, no default", func(t *testing.T) {
		// A call without deadline gets the cap when there is no default.
		ctxErr := make(chan error, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Max: 50 * time.Millisecond}, Grace: time.Second}, &stubGreeter{unary: untilDone(ctxErr)})
		ctx, _ := noDeadline(t)
		_, err := s.c.SayHello(ctx, hello)
		wantServerDeadline(t, err, wire.ReasonServerCap, wire.MetaCap, "50ms")
		if got := <-ctxErr; got != context.DeadlineExceeded {
			t.Errorf("handler's ctx.Err() = %v, want context.DeadlineExceeded", got)
		}
	})
}

func TestMinBudget(t *testing.T) {
	t.Run("refused at once", func(t *testing.T) {
		var called atomic.Int32
		s := newGuarded(t, guard.Config{Policy: guard.Policy{MinBudget: 5 * time.Second}, Grace: time.Second},
			&stubGreeter{unary: func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
				called.Add(1)
				return &greeterpb.HelloReply{}, nil
			}})
		// One second is plenty for the answer, and less than the
		// minimum: the refusal, with its ErrorInfo, comes from the
		// server, not from the caller's own deadline.
		ctx, cancel := context.WithTimeout(testContext(t), time.Second)
		defer cancel()
		_, err := s.c.SayHello(ctx, hello)
		wantServerDeadline(t, err, wire.ReasonMinBudget, wire.MetaMin, "5s")
		if n := called.Load(); n != 0 {
			t.Errorf("handler called %d times, want never", n)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, sayHello) {
			t.Errorf("message %q does not name the method", msg)
		}
		if rec := s.logs.await(t, logRefused); rec.attrs["method"].String() != sayHello {
			t.Errorf("log %q %v, want method %s", rec.msg, rec.attrs, sayHello)
		}
	})
	t.Run("enough budget", func(t *testing.T) {
		left := make(chan time.Duration, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{MinBudget: time.Second}, Grace: time.Second}, &stubGreeter{unary: reportLeft(left)})
		if _, err := s.c.SayHello(testContext(t), hello); err != nil {
			t.Fatalf("SayHello with %v of budget: %v", defaultTestTimeout, err)
		}
		<-left
	})
	t.Run("server default is the budget", func(t *testing.T) {
		left := make(chan time.Duration, 1)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: 2 * time.Second, MinBudget: time.Second}, Grace: time.Second},
			&stubGreeter{unary: reportLeft(left)})
		ctx, _ := noDeadline(t)
		if _, err := s.c.SayHello(ctx, hello); err != nil {
			t.Fatalf("SayHello without deadline, default above the minimum: %v", err)
		}
		<-left
	})
	t.Run("stream refused", func(t *testing.T) {
		var called atomic.Int32
		s := newGuarded(t, guard.Config{Policy: guard.Policy{MinBudget: time.Hour}, Grace: time.Second},
			&stubGreeter{serverStream: func(*greeterpb.HelloRequest, grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
				called.Add(1)
				return nil
			}})
		stream, err := s.c.SayHelloStreamReply(testContext(t), hello)
		if err == nil {
			_, err = stream.Recv()
		}
		wantServerDeadline(t, err, wire.ReasonMinBudget, wire.MetaMin, "1h0m0s")
		if n := called.Load(); n != 0 {
			t.Errorf("handler called %d times, want never", n)
		}
	})
}

func TestMethodPolicies(t *testing.T) {
	// The cap each call got, which the trailer reports, tells which
	// policy applied.
	cfg := guard.Config{
		Policy: guard.Policy{Max: 1 * time.Second},
		Methods: map[string]guard.Policy{
			sayHello:        {Max: 2 * time.Second}, // full name: this service only
			"SayHelloAgain": {Max: 3 * time.Second}, // short name: any service
			"SayHello":      {Max: 4 * time.Second}, // the full name above wins for /Greeter
		},
		Grace: time.Second,
	}
	s := newGuarded(t, cfg, &stubGreeter{
		unary: func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
			return &greeterpb.HelloReply{}, nil
		},
		serverStream: func(r *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
			return stream.Send(&greeterpb.HelloReply{})
		},
	})
	ctx := testContext(t)
	for _, tt := range []struct {
		method, want string
	}{
		{sayHello, "2s"},
		{sayHelloAgain, "3s"},
		{"/" + helloworldService + "/SayHello", "4s"},
		{"/" + helloworldService + "/SayHelloAgain", "3s"},
	} {
		var trailer metadata.MD
		if err := s.cc.Invoke(ctx, tt.method, hello, &greeterpb.HelloReply{}, grpc.Trailer(&trailer)); err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		if got := trailer.Get(wire.TrailerDeadlineCap); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: cap %q, want [%s]", tt.method, got, tt.want)
		}
	}
	stream, err := s.c.SayHelloStreamReply(ctx, hello)
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("Recv: %v", err)
		}
	}
	if got := stream.Trailer().Get(wire.TrailerDeadlineCap); len(got) != 1 || got[0] != "1s" {
		t.Errorf("%s (no policy of its own): cap %q, want the server-wide [1s]", streamReply, got)
	}
}

func TestHandlerSeesDeadlineExceeded(t *testing.T) {
	// The caller's deadline ends the handler's context: whether grpc's
	// timer or the caller's RST_STREAM comes first, the handler is told
	// DeadlineExceeded, and keeps being told so.
	const calls = 10
	const budget = 100 * time.Millisecond
	handlerErrs := make(chan [2]error, calls)
	s := newGuarded(t, guard.Config{Grace: time.Second}, &stubGreeter{unary: func(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
		<-ctx.Done()
		first := ctx.Err()
		handlerErrs <- [2]error{first, ctx.Err()}
		return nil, status.FromContextError(first).Err()
	}})
	clientErrs := make(chan error, calls)
	for range calls {
		go func() {
			ctx, cancel := context.WithTimeout(testContext(t), budget)
			defer cancel()
			_, err := s.c.SayHello(ctx, hello)
			clientErrs <- err
		}()
	}
	for range calls {
		if err := await(t, clientErrs, "call's end"); status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("SayHello = %v, want DeadlineExceeded", err)
		}
		if errs := await(t, handlerErrs, "handler's end"); errs[0] != context.DeadlineExceeded || errs[1] != context.DeadlineExceeded {
			t.Errorf("handler's ctx.Err() = %v, then %v; want context.DeadlineExceeded", errs[0], errs[1])
		}
	}
}

func TestCancelJustBeforeDeadlineIsDeadline(t *testing.T) {
	// A caller that cancels within a few milliseconds of its deadline
	// looks to the server just like the caller's RST_STREAM beating the
	// server's timer for the same deadline: out of time, not canceled.
	const budget, early = 300 * time.Millisecond, 5 * time.Millisecond
	ctxErr := make(chan error, 1)
	s := newGuarded(t, guard.Config{Grace: time.Second}, &stubGreeter{unary: untilDone(ctxErr)})
	ctx, cancel := context.WithTimeout(testContext(t), budget)
	defer cancel()
	stop := time.AfterFunc(budget-early, cancel)
	defer stop.Stop()
	if _, err := s.c.SayHello(ctx, hello); status.Code(err) != codes.Canceled && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SayHello = %v, want Canceled or DeadlineExceeded", err)
	}
	if got := await(t, ctxErr, "handler's end"); got != context.DeadlineExceeded {
		t.Errorf("handler's ctx.Err() = %v, want context.DeadlineExceeded", got)
	}
}

func TestHandlerSeesCanceled(t *testing.T) {
	// A caller that leaves well before any deadline cancels the call.
	for _, tt := range []struct {
		name string
		ctx  func(t *testing.T) (context.Context, context.CancelFunc)
	}{
		{"caller's deadline", func(t *testing.T) (context.Context, context.CancelFunc) {
			return context.WithTimeout(testContext(t), defaultTestTimeout)
		}},
		{"server default", noDeadline},
	} {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			ctxErr := make(chan error, 1)
			s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: defaultTestTimeout}, Grace: time.Second},
				&stubGreeter{unary: func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
					close(started)
					return untilDone(ctxErr)(ctx, r)
				}})
			ctx, cancel := tt.ctx(t)
			defer cancel()
			res := make(chan error, 1)
			go func() {
				_, err := s.c.SayHello(ctx, hello)
				res <- err
			}()
			await(t, started, "handler start")
			cancel()
			if err := await(t, res, "call's end"); status.Code(err) != codes.Canceled {
				t.Errorf("SayHello = %v, want Canceled", err)
			}
			if got := await(t, ctxErr, "handler's end"); got != context.Canceled {
				t.Errorf("handler's ctx.Err() = %v, want context.Canceled", got)
			}
			if rec := s.logs.await(t, logCanceled); rec.attrs["method"].String() != sayHello {
				t.Errorf("log %q %v, want method %s", rec.msg, rec.attrs, sayHello)
			}
		})
	}
}

func TestHandlersOwnAnswerKept(t *testing.T) {
	// A handler that answers for itself after its deadline is not
	// overruled by the guard.
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"error", status.Error(codes.NotFound, "no greeting for you")},
		{"reply", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: 20 * time.Millisecond}, Grace: time.Second},
				&stubGreeter{unary: func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
					<-ctx.Done()
					if tt.err != nil {
						return nil, tt.err
					}
					return &greeterpb.HelloReply{Message: "late but fine"}, nil
				}})
			ctx, _ := noDeadline(t)
			reply, err := s.c.SayHello(ctx, hello)
			if tt.err != nil {
				if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no greeting for you" {
					t.Fatalf("SayHello = %v, want the handler's %v", err, tt.err)
				}
				return
			}
			if err != nil || reply.GetMessage() != "late but fine" {
				t.Fatalf("SayHello = %v, %v; want the handler's reply", reply, err)
			}
		})
	}
}

// ignoring is a handler that ignores the end of its context: it signals
// started and returns when release closes.
func ignoring(started chan<- struct{}, release <-chan struct{}) func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
		close(started)
		<-release
		return &greeterpb.HelloReply{Message: "finally"}, nil
	}
}

func TestOverrunCountedOnce(t *testing.T) {
	const dflt, grace = 20 * time.Millisecond, 50 * time.Millisecond
	started, release := make(chan struct{}), make(chan struct{})
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: grace}, &stubGreeter{unary: ignoring(started, release)})
	ctx, _ := noDeadline(t)
	res := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := s.c.SayHello(ctx, hello)
		res <- err
	}()
	await(t, started, "handler start")
	rec := s.logs.await(t, logStillRunning)
	elapsed := time.Since(start)
	// Counted between grace and one and a half grace after the deadline
	// (at least 5ms on): the lower bound is exact, the upper one slack.
	if lo, hi := dflt+grace, dflt+grace*3/2+5*time.Millisecond+slack; elapsed < lo || elapsed > hi {
		t.Errorf("overrun logged %v after the call started, want within [%v, %v]", elapsed, lo, hi)
	}
	if rec.level != slog.LevelWarn || rec.attrs["method"].String() != sayHello || rec.attrs["since_end"].Duration() < grace {
		t.Errorf("log %q at %v %v, want Warn with method %s, since_end at least %v", rec.msg, rec.level, rec.attrs, sayHello, grace)
	}
	if n := s.g.Overruns(); n != 1 {
		t.Errorf("Overruns() = %d while the handler runs on, want 1", n)
	}
	close(release)
	if err := await(t, res, "call's end"); err != nil {
		t.Errorf("SayHello = %v, want the handler's late reply", err)
	}
	// The guard is done with the call before grpc sends its answer: a
	// second count or log would be here by now.
	if n := s.g.Overruns(); n != 1 {
		t.Errorf("Overruns() = %d after the handler returned, want still 1", n)
	}
	if n := s.logs.count(slog.LevelWarn); n != 1 {
		t.Errorf("%d Warn records, want 1: %v", n, s.logs.find(logReturnedLate))
	}
}

func TestOverrunClockStarts(t *testing.T) {
	const grace = 50 * time.Millisecond
	t.Run("when the caller leaves a call without deadline", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		s := newGuarded(t, guard.Config{Grace: grace}, &stubGreeter{unary: ignoring(started, release)})
		ctx, cancel := noDeadline(t)
		go func() { _, _ = s.c.SayHello(ctx, hello) }()
		await(t, started, "handler start")
		// Long after grace, with nobody gone, nothing is counted.
		s.logs.awaitNone(t, logStillRunning, 4*grace)
		left := time.Now()
		cancel()
		s.logs.await(t, logStillRunning)
		if elapsed := time.Since(left); elapsed < grace || elapsed > grace*3/2+5*time.Millisecond+slack {
			t.Errorf("overrun logged %v after the caller left, want within [%v, %v]", elapsed, grace, grace*3/2+5*time.Millisecond+slack)
		}
		if n := s.g.Overruns(); n != 1 {
			t.Errorf("Overruns() = %d, want 1", n)
		}
	})
	t.Run("at the deadline for a call with one", func(t *testing.T) {
		// Documented: grace after its deadline, also when its caller
		// left earlier.
		const dflt = 200 * time.Millisecond
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: grace}, &stubGreeter{unary: ignoring(started, release)})
		ctx, cancel := noDeadline(t)
		start := time.Now()
		go func() { _, _ = s.c.SayHello(ctx, hello) }()
		await(t, started, "handler start")
		cancel()
		s.logs.await(t, logStillRunning)
		if elapsed, lo, hi := time.Since(start), dflt+grace, dflt+grace*3/2+5*time.Millisecond+slack; elapsed < lo || elapsed > hi {
			t.Errorf("overrun logged %v after the call started, want within [%v, %v]", elapsed, lo, hi)
		}
		if n := s.g.Overruns(); n != 1 {
			t.Errorf("Overruns() = %d, want 1", n)
		}
	})
}

func TestPromptHandlerNotCounted(t *testing.T) {
	ctxErr := make(chan error, 1)
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: 20 * time.Millisecond}, Grace: 2 * time.Second}, &stubGreeter{unary: untilDone(ctxErr)})
	ctx, _ := noDeadline(t)
	if _, err := s.c.SayHello(ctx, hello); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SayHello = %v, want DeadlineExceeded", err)
	}
	if n := s.g.Overruns(); n != 0 {
		t.Errorf("Overruns() = %d for a handler that returned at its deadline, want 0", n)
	}
	if n := s.logs.count(slog.LevelWarn); n != 0 {
		t.Errorf("%d Warn records, want none", n)
	}
}

func TestStopStopsSweeper(t *testing.T) {
	const dflt, grace = 20 * time.Millisecond, 20 * time.Millisecond
	started, release := make(chan struct{}), make(chan struct{})
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: grace}, &stubGreeter{unary: ignoring(started, release)})
	s.g.Stop()
	ctx, _ := noDeadline(t)
	res := make(chan error, 1)
	go func() {
		_, err := s.c.SayHello(ctx, hello)
		res <- err
	}()
	await(t, started, "handler start")
	// Running (the sweeper would catch it within dflt+grace*3/2+5ms), no
	// sweep: nothing is logged while the handler runs on.
	s.logs.awaitNone(t, logStillRunning, 10*(dflt+grace))
	if n := s.g.Overruns(); n != 0 {
		t.Errorf("Overruns() = %d with the sweeper stopped, want 0 until the handler returns", n)
	}
	close(release)
	await(t, res, "call's end")
	// The handler's return still counts it.
	if rec := s.logs.await(t, logReturnedLate); rec.attrs["method"].String() != sayHello {
		t.Errorf("log %q %v, want method %s", rec.msg, rec.attrs, sayHello)
	}
	if n := s.g.Overruns(); n != 1 {
		t.Errorf("Overruns() = %d after the late return, want 1", n)
	}
}

func TestReportStuck(t *testing.T) {
	// ReportStuck runs while grpc is cancelling the calls left: the
	// interceptor is called directly, with a context the test cancels.
	logs := newRecorder()
	g := guard.New(guard.Config{Grace: time.Hour, Logger: slog.New(logs)})
	defer g.Stop()
	interceptor := g.UnaryServerInterceptor()
	run := func(ctx context.Context, method string, started chan<- struct{}) <-chan error {
		res := make(chan error, 1)
		go func() {
			_, err := interceptor(ctx, hello, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
				close(started)
				<-ctx.Done()
				return nil, status.FromContextError(ctx.Err()).Err()
			})
			res <- err
		}()
		return res
	}

	g.ReportStuck() // nothing running: nothing to say
	if found := logs.find(logStuck); len(found) != 0 {
		t.Errorf("ReportStuck with no handler running logged %v", found[0].attrs)
	}

	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	started := make(chan struct{})
	res := run(ctx, "/Greeter/Stuck", started)
	await(t, started, "handler start")
	g.ReportStuck()
	rec := logs.await(t, logStuck)
	names, _ := rec.attrs["handlers"].Any().([]string)
	if rec.level != slog.LevelWarn || len(names) != 1 || !strings.HasPrefix(names[0], "/Greeter/Stuck (running ") {
		t.Errorf("log %q at %v %v, want Warn naming /Greeter/Stuck", rec.msg, rec.level, rec.attrs)
	}
	cancel() // what grpc's Stop does to the calls left
	if err := await(t, res, "call's end"); status.Code(err) != codes.Unavailable {
		t.Errorf("call cancelled by shutdown = %v, want Unavailable", err)
	}
}

func TestCanceledStatusWithoutShutdown(t *testing.T) {
	// The same call as in TestReportStuck, with no shutdown under way:
	// the caller canceled.
	g := guard.New(guard.Config{Grace: time.Hour, Logger: slog.New(newRecorder())})
	defer g.Stop()
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	_, err := g.UnaryServerInterceptor()(ctx, hello, &grpc.UnaryServerInfo{FullMethod: sayHello}, func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err() // a bare context error: grpc would say Unknown
	})
	if status.Code(err) != codes.Canceled {
		t.Errorf("canceled call = %v, want Canceled", err)
	}
}

func TestStreamDefaultDeadline(t *testing.T) {
	const dflt = 50 * time.Millisecond
	ctxErr := make(chan error, 1)
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: time.Second},
		&stubGreeter{serverStream: func(_ *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
			if err := stream.Send(&greeterpb.HelloReply{Message: "first"}); err != nil {
				return err
			}
			<-stream.Context().Done()
			ctxErr <- stream.Context().Err()
			return status.FromContextError(stream.Context().Err()).Err()
		}})
	ctx, _ := noDeadline(t)
	stream, err := s.c.SayHelloStreamReply(ctx, hello)
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	if r, err := stream.Recv(); err != nil || r.GetMessage() != "first" {
		t.Fatalf("first Recv = %v, %v", r, err)
	}
	_, err = stream.Recv()
	wantServerDeadline(t, err, wire.ReasonServerDefault, wire.MetaDefault, "50ms")
	if got := await(t, ctxErr, "handler's end"); got != context.DeadlineExceeded {
		t.Errorf("handler's ctx.Err() = %v, want context.DeadlineExceeded", got)
	}
}

func TestStreamCap(t *testing.T) {
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Max: 50 * time.Millisecond}, Grace: time.Second},
		&stubGreeter{serverStream: func(_ *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
			<-stream.Context().Done()
			return status.FromContextError(stream.Context().Err()).Err()
		}})
	stream, err := s.c.SayHelloStreamReply(testContext(t), hello)
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	_, err = stream.Recv()
	wantServerDeadline(t, err, wire.ReasonServerCap, wire.MetaCap, "50ms")
	if got := stream.Trailer().Get(wire.TrailerDeadlineCap); len(got) != 1 || got[0] != "50ms" {
		t.Errorf("trailer %s = %q, want [50ms]", wire.TrailerDeadlineCap, got)
	}
}

func TestStreamRecvEndsAtServerDeadline(t *testing.T) {
	// A handler blocked in Recv on a caller that sends nothing is freed
	// by the server's own deadline, not only by the caller's.
	const dflt = 50 * time.Millisecond
	recvErr := make(chan error, 1)
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: dflt}, Grace: time.Second},
		&stubGreeter{bidi: func(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
			_, err := stream.Recv()
			recvErr <- err
			return err
		}})
	ctx, _ := noDeadline(t)
	start := time.Now()
	stream, err := s.c.SayHelloBidiStream(ctx)
	if err != nil {
		t.Fatalf("SayHelloBidiStream: %v", err)
	}
	_, err = stream.Recv()
	elapsed := time.Since(start)
	wantServerDeadline(t, err, wire.ReasonServerDefault, wire.MetaDefault, "50ms")
	if elapsed < dflt || elapsed > dflt+slack {
		t.Errorf("stream ended after %v, want within [%v, %v]", elapsed, dflt, dflt+slack)
	}
	if got := await(t, recvErr, "handler's Recv"); status.Code(got) != codes.DeadlineExceeded {
		t.Errorf("handler's Recv = %v, want DeadlineExceeded", got)
	}
}

func TestStreamRecvWithinDeadline(t *testing.T) {
	// The same stream, with a caller that talks: Recv works as usual.
	s := newGuarded(t, guard.Config{Policy: guard.Policy{Default: defaultTestTimeout}, Grace: time.Second},
		&stubGreeter{bidi: func(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
			for {
				r, err := stream.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := stream.Send(&greeterpb.HelloReply{Message: "Hello, " + r.GetName()}); err != nil {
					return err
				}
			}
		}})
	ctx, _ := noDeadline(t)
	stream, err := s.c.SayHelloBidiStream(ctx)
	if err != nil {
		t.Fatalf("SayHelloBidiStream: %v", err)
	}
	for _, name := range []string{"a", "b"} {
		if err := stream.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if r, err := stream.Recv(); err != nil || r.GetMessage() != "Hello, "+name {
			t.Fatalf("Recv = %v, %v; want Hello, %s", r, err, name)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after CloseSend = %v, want io.EOF", err)
	}
}
