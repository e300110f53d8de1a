package greeter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// bareContext returns a context without deadline, cancelled at the end of
// the test.
func bareContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// timeSlack is the honest margin for a loaded machine on upper time bounds.
const timeSlack = time.Second

// workForever is simulated work no test waits out: the handler ends with its
// context.
const workForever = time.Hour

// logRecorder is a slog.Handler that keeps every record and hands each to
// a channel, so tests await a log line instead of sleeping.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
	ch      chan slog.Record
}

func newLogRecorder() *logRecorder { return &logRecorder{ch: make(chan slog.Record, 1000)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r)
	h.mu.Unlock()
	select {
	case h.ch <- r:
	default:
	}
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) logger() *slog.Logger { return slog.New(h) }

// await returns the first record with message msg, or fails the test when
// ctx ends.
func (h *logRecorder) await(ctx context.Context, t *testing.T, msg string) slog.Record {
	t.Helper()
	for {
		select {
		case r := <-h.ch:
			if r.Message == msg {
				return r
			}
		case <-ctx.Done():
			t.Fatalf("no log %q before the test's deadline", msg)
		}
	}
}

func (h *logRecorder) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Message == msg {
			n++
		}
	}
	return n
}

func logAttr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// deadlineError asserts err is an explained deadline error with code want.
func deadlineError(t *testing.T, err error, want codes.Code) *greeter.DeadlineError {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status.Code(%v) = %v; want %v", err, got, want)
	}
	var de *greeter.DeadlineError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v (%T); want a *greeter.DeadlineError", err, err)
	}
	return de
}

// within asserts a duration is in [lo, hi+timeSlack].
func assertWithin(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi+timeSlack {
		t.Fatalf("%s = %v; want between %v and %v (+%v timeSlack)", what, got, lo, hi, timeSlack)
	}
}

// assertRecvDeadline asserts that recv, the first receive of a stream
// opened at start, ends in DeadlineExceeded after budget from source.
func assertRecvDeadline(t *testing.T, recv func() error, start time.Time, source greeter.DeadlineSource, budget time.Duration) {
	t.Helper()
	err := recv()
	assertWithin(t, "time to DeadlineExceeded", time.Since(start), budget, budget)
	de := deadlineError(t, err, codes.DeadlineExceeded)
	if de.Source != source || de.Budget != budget {
		t.Errorf("Source %v, Budget %v; want %v, %v (%v)", de.Source, de.Budget, source, budget, err)
	}
}

// countCalls is a server interceptor counting the calls that reach the
// server.
func countCalls(n *atomic.Int64) greeter.ServerOption {
	return greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n.Add(1)
		return h(ctx, req)
	})
}

func TestDeadlineErrorContract(t *testing.T) {
	ctx := testContext(t)
	c := newClient(t, newServer(t, greeter.WithDelay(workForever)))
	start := time.Now() // before the context: its deadline is no earlier than start+100ms
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := c.SayHello(cctx, "you")
	assertWithin(t, "time to DeadlineExceeded", time.Since(start), 100*time.Millisecond, 100*time.Millisecond)
	de := deadlineError(t, err, codes.DeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(err, context.DeadlineExceeded) = false for %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(err, context.Canceled) = true for %v", err)
	}
	if de.Source != greeter.SourceCaller || de.Phase != greeter.PhaseServer || de.Attempts != 1 || de.LastCode != codes.DeadlineExceeded {
		t.Errorf("got Source %v, Phase %v, Attempts %d, LastCode %v; want caller's context, on the server, 1, DeadlineExceeded", de.Source, de.Phase, de.Attempts, de.LastCode)
	}
	assertWithin(t, "Budget", de.Budget, 90*time.Millisecond, 100*time.Millisecond)
	// The budget is what was left when the call started: 100ms, or a
	// millisecond less on a busy machine.
	budget := fmt.Sprintf("budget %v from caller's context", de.Budget.Round(time.Millisecond))
	for _, want := range []string{"deadline exceeded after", budget, "on the server", "1 attempt, last: DeadlineExceeded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q; want it to say %q", err, want)
		}
	}
	// The status message is the same explanation without the time taken,
	// so that calls that end alike share it.
	elapsed := fmt.Sprintf(" after %v", de.Elapsed.Round(time.Millisecond))
	if msg, want := status.Convert(err).Message(), strings.Replace(err.Error(), elapsed, "", 1); msg != want || strings.Contains(msg, " after ") {
		t.Errorf("status message %q; want the explanation without the time taken, %q", msg, want)
	}
}

// handlerStarts returns a handler that reports each start on a channel,
// then greets.
func handlerStarts() (greeter.ServerOption, <-chan string) {
	ch := make(chan string, 100)
	return handlerFunc(func(_ context.Context, method string) error { ch <- method; return nil }), ch
}

// handlerStartsAndWorks returns a handler that reports each start on a
// channel, then works until its context ends.
func handlerStartsAndWorks() (greeter.ServerOption, <-chan string) {
	ch := make(chan string, 100)
	return handlerFunc(untilEnd(ch)), ch
}

func TestCanceledExplained(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	hook, begun := handlerStartsAndWorks()
	c := newClient(t, newServer(t, greeter.WithServerDeadlines(greeter.DeadlinePolicy{}), greeter.WithLogger(logs.logger()), hook))
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	go func() {
		<-begun // cancel once the server is working on the call
		cancel()
	}()
	_, err := c.SayHello(cctx, "you")
	de := deadlineError(t, err, codes.Canceled)
	if !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is: want context.Canceled only, for %v", err)
	}
	if de.Phase != greeter.PhaseServer || de.Source != greeter.SourceCaller {
		t.Errorf("Phase %v, Source %v; want on the server, caller's context", de.Phase, de.Source)
	}
	if !strings.HasPrefix(err.Error(), "canceled after") {
		t.Errorf("err = %q; want it to start with %q", err, "canceled after")
	}
	r := logs.await(ctx, t, "call canceled by the caller")
	if m := logAttr(r, "method"); m != "/Greeter/SayHello" {
		t.Errorf("log method = %q; want /Greeter/SayHello", m)
	}
}

func TestClientDeadlineSources(t *testing.T) {
	const methodTimeout = `{"methodConfig": [{"name": [{"service": "Greeter", "method": "SayHello"}], "timeout": "0.15s"}]}`
	tests := []struct {
		name       string
		opts       []greeter.ClientOption
		callerTO   time.Duration // 0: no deadline in ctx
		wantSource greeter.DeadlineSource
		wantBudget time.Duration
	}{
		{"caller shorter than default", []greeter.ClientOption{greeter.WithDefaultTimeout(5 * time.Second)}, 100 * time.Millisecond, greeter.SourceCaller, 100 * time.Millisecond},
		{"default when caller sets none", []greeter.ClientOption{greeter.WithDefaultTimeout(100 * time.Millisecond)}, 0, greeter.SourceClientDefault, 100 * time.Millisecond},
		{"caller longer than default", []greeter.ClientOption{greeter.WithDefaultTimeout(50 * time.Millisecond)}, 200 * time.Millisecond, greeter.SourceCaller, 200 * time.Millisecond},
		{"service config tighter than caller", []greeter.ClientOption{greeter.WithServiceConfig(methodTimeout)}, 5 * time.Second, greeter.SourceServiceConfig, 150 * time.Millisecond},
		{"caller tighter than service config", []greeter.ClientOption{greeter.WithServiceConfig(methodTimeout)}, 100 * time.Millisecond, greeter.SourceCaller, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			c := newClient(t, newServer(t, greeter.WithDelay(workForever)), tt.opts...)
			start := time.Now() // before the context: its deadline is no earlier than start+callerTO
			cctx := bareContext(t)
			if tt.callerTO > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, tt.callerTO)
				defer cancel()
			}
			_, err := c.SayHello(cctx, "you")
			assertWithin(t, "time to DeadlineExceeded", time.Since(start), tt.wantBudget, tt.wantBudget)
			de := deadlineError(t, err, codes.DeadlineExceeded)
			if de.Source != tt.wantSource {
				t.Errorf("Source = %v; want %v (%v)", de.Source, tt.wantSource, err)
			}
			assertWithin(t, "Budget", de.Budget, tt.wantBudget-10*time.Millisecond, tt.wantBudget)
		})
	}
}

func TestNoDeadlineOnlyWhenOptedOut(t *testing.T) {
	hook, begun := handlerStartsAndWorks()
	srv := newServer(t, hook)
	var seen atomic.Value
	c := newClient(t, srv, greeter.WithDefaultTimeout(0), greeter.WithUnaryClientInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			_, ok := ctx.Deadline()
			seen.Store(ok)
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	cctx, cancel := context.WithCancel(bareContext(t))
	go func() { <-begun; cancel() }()
	_, err := c.SayHello(cctx, "you")
	de := deadlineError(t, err, codes.Canceled)
	if seen.Load() != false || de.Source != greeter.SourceNone {
		t.Errorf("call had a deadline (%v) or Source %v; WithDefaultTimeout(0) must send none", seen.Load(), de.Source)
	}
}

func TestExpiredContextNeverSent(t *testing.T) {
	ctx := testContext(t)
	var calls atomic.Int64
	c := newClient(t, newServer(t, countCalls(&calls)))
	if _, err := c.SayHello(ctx, "warm-up"); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	expired, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	_, err := c.SayHello(expired, "you")
	de := deadlineError(t, err, codes.DeadlineExceeded)
	if de.Phase != greeter.PhaseBeforeSend || de.Attempts != 0 {
		t.Errorf("Phase %v, Attempts %d; want before send, 0", de.Phase, de.Attempts)
	}
	if !strings.Contains(err.Error(), "before send") {
		t.Errorf("err = %q; want it to say before send", err)
	}
	_, err = c.SayHelloStreamReply(expired, "you")
	if de := deadlineError(t, err, codes.DeadlineExceeded); de.Phase != greeter.PhaseBeforeSend {
		t.Errorf("stream: Phase %v; want before send", de.Phase)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("server saw %d unary calls; want only the warm-up", n)
	}
}

func TestServerPolicy(t *testing.T) {
	t.Run("default for calls without deadline", func(t *testing.T) {
		srv := newServer(t, greeter.WithDelay(workForever), greeter.WithServerDeadlines(greeter.DeadlinePolicy{Default: 100 * time.Millisecond}))
		c := newClient(t, srv, greeter.WithDefaultTimeout(0))
		start := time.Now()
		_, err := c.SayHello(bareContext(t), "you")
		assertWithin(t, "time to DeadlineExceeded", time.Since(start), 100*time.Millisecond, 100*time.Millisecond)
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Source != greeter.SourceServerDefault || de.Budget != 100*time.Millisecond || de.Phase != greeter.PhaseServer {
			t.Errorf("Source %v, Budget %v, Phase %v; want server's default, 100ms, on the server (%v)", de.Source, de.Budget, de.Phase, err)
		}
	})
	t.Run("max clamps and is reported", func(t *testing.T) {
		ctx := testContext(t)
		srv := newServer(t, greeter.WithDelay(workForever), greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: 100 * time.Millisecond}))
		c := newClient(t, srv)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var trailer metadata.MD
		start := time.Now()
		_, err := c.SayHello(cctx, "you", grpc.Trailer(&trailer))
		assertWithin(t, "time to DeadlineExceeded", time.Since(start), 100*time.Millisecond, 100*time.Millisecond)
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Source != greeter.SourceServerCap || de.Budget != 100*time.Millisecond {
			t.Errorf("Source %v, Budget %v; want server's cap, 100ms (%v)", de.Source, de.Budget, err)
		}
		if got := trailer.Get(greeter.TrailerDeadlineCap); len(got) != 1 || got[0] != "100ms" {
			t.Errorf("trailer %s = %q; want [100ms]", greeter.TrailerDeadlineCap, got)
		}
	})
	t.Run("min budget refuses at once, per method", func(t *testing.T) {
		ctx := testContext(t)
		hook, begun := handlerStarts()
		srv := newServer(t, greeter.WithMethodDeadlines("SayHelloAgain", greeter.DeadlinePolicy{MinBudget: 500 * time.Millisecond}), hook)
		c := newClient(t, srv)
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := c.SayHello(cctx, "you"); err != nil {
			t.Fatalf("SayHello: %v; the policy is SayHelloAgain's only", err)
		}
		<-begun
		_, err := c.SayHelloAgain(cctx, "you")
		if cctx.Err() != nil {
			t.Fatalf("refusal came after the caller's deadline; want at once")
		}
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if !strings.Contains(de.Detail, "needs at least 500ms") || de.Phase != greeter.PhaseServer {
			t.Errorf("Detail %q, Phase %v; want the server's refusal, on the server", de.Detail, de.Phase)
		}
		select {
		case m := <-begun:
			t.Errorf("refused call reached the handler (%s)", m)
		default:
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, p := range []greeter.DeadlinePolicy{{Default: -1}, {Default: 2 * time.Second, Max: time.Second}, {Max: time.Second, MinBudget: 2 * time.Second}} {
			if _, err := greeter.NewServer(greeter.WithServerDeadlines(p)); err == nil {
				t.Errorf("NewServer(WithServerDeadlines(%+v)) = nil error; want one", p)
			}
		}
	})
}

func TestRemaining(t *testing.T) {
	ctx := testContext(t)
	got := make(chan time.Duration, 1)
	hook := handlerFunc(func(ctx context.Context, _ string) error {
		d, ok := greeter.Remaining(ctx)
		if !ok {
			d = -1
		}
		got <- d
		return nil
	})
	c := newClient(t, newServer(t, hook, greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: 200 * time.Millisecond})))
	if _, err := c.SayHello(ctx, "you"); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	assertWithin(t, "Remaining in the handler, capped at 200ms", <-got, 100*time.Millisecond, 200*time.Millisecond)
	if d, ok := greeter.Remaining(context.Background()); ok || d != 0 {
		t.Errorf("Remaining(Background) = %v, %v; want 0, false", d, ok)
	}
}

// TestServerSaysDeadlineExceeded checks that when the caller's deadline
// passes, the handler's context and the server's log say DeadlineExceeded,
// never Canceled, though the client's RST_STREAM often reaches grpc before
// the server's own timer fires.
func TestServerSaysDeadlineExceeded(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	var reached atomic.Int64
	var ctxErrs sync.Map
	hook := handlerFunc(func(hctx context.Context, _ string) error {
		reached.Add(1)
		<-hctx.Done()
		ctxErrs.Store(hctx, hctx.Err())
		return hctx.Err()
	})
	c := newClient(t, newServer(t, hook, greeter.WithLogger(logs.logger()), greeter.WithServerDeadlines(greeter.DeadlinePolicy{})))
	// Connect first: a call that runs out while the connection is being
	// made never reaches the server, and the server has nothing to say.
	if err := c.Conn().Invoke(ctx, "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); err != nil {
		t.Fatalf("health check: %v", err)
	}
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := c.SayHello(cctx, "you")
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("SayHello: %v; want DeadlineExceeded", err)
			}
		})
	}
	wg.Wait()
	m := reached.Load()
	if m < n/2 {
		t.Fatalf("only %d of %d calls reached the server before their deadline", m, n)
	}
	for range m {
		logs.await(ctx, t, "deadline exceeded")
	}
	if k := logs.count("call canceled by the caller"); k != 0 {
		t.Errorf("server logged %d of %d expired calls as canceled", k, m)
	}
	ctxErrs.Range(func(_, v any) bool {
		if v != context.DeadlineExceeded {
			t.Errorf("handler's ctx.Err() = %v; want context.DeadlineExceeded", v)
		}
		return true
	})
}

// TestOverrunDetected checks that a handler ignoring its context is counted
// and named grace after its deadline, and counted once only when it
// returns at last.
func TestOverrunDetected(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	release := make(chan struct{})
	returned := make(chan struct{})
	hook := handlerFunc(func(context.Context, string) error { <-release; return nil }) // ignores its context
	// Outside the guard: runs once the guard has seen the handler return.
	after := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		defer close(returned)
		return h(ctx, req)
	})
	srv := newServer(t, hook, after, greeter.WithLogger(logs.logger()), greeter.WithOverrunGrace(20*time.Millisecond))
	c := newClient(t, srv)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := c.SayHello(cctx, "you")
	deadlineError(t, err, codes.DeadlineExceeded)
	r := logs.await(ctx, t, "handler still running after its context ended")
	if m := logAttr(r, "method"); m != "/Greeter/SayHello" {
		t.Errorf("overrun log method = %q; want /Greeter/SayHello", m)
	}
	// Not before the grace has run out: the sweep counts no handler early.
	if d, err := time.ParseDuration(logAttr(r, "since_end")); err != nil || d < 20*time.Millisecond {
		t.Errorf("overrun log since_end = %q; want at least the grace, 20ms", logAttr(r, "since_end"))
	}
	if n := srv.Server.Overruns(); n != 1 {
		t.Errorf("Overruns() = %d; want 1", n)
	}
	close(release)
	<-returned
	if n := srv.Server.Overruns(); n != 1 {
		t.Errorf("after the handler returned, Overruns() = %d; want still 1", n)
	}
}

// TestOverrunAfterCallerLeft checks that a handler ignoring a call without
// deadline that its caller cancelled is counted and named, once the grace
// has passed since the cancellation.
func TestOverrunAfterCallerLeft(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	release := make(chan struct{})
	begun := make(chan struct{})
	late := make(chan error, 1)
	ignore := handlerFunc(func(hctx context.Context, _ string) error {
		close(begun)
		<-release // ignores its context until the test lets it go
		err := hctx.Err()
		late <- err
		return status.FromContextError(err).Err()
	})
	srv := newServer(t, ignore, greeter.WithLogger(logs.logger()), greeter.WithOverrunGrace(20*time.Millisecond))
	c := newClient(t, srv, greeter.WithDefaultTimeout(0))
	cctx, cancel := context.WithCancel(bareContext(t))
	go func() { <-begun; cancel() }()
	_, err := c.SayHello(cctx, "you")
	deadlineError(t, err, codes.Canceled)
	r := logs.await(ctx, t, "handler still running after its context ended")
	if m := logAttr(r, "method"); m != "/Greeter/SayHello" {
		t.Errorf("overrun log method = %q; want /Greeter/SayHello", m)
	}
	close(release)
	if err := <-late; err != context.Canceled {
		t.Errorf("handler's ctx.Err() = %v; want context.Canceled", err)
	}
	logs.await(ctx, t, "call canceled by the caller")
	if n := srv.Server.Overruns(); n != 1 {
		t.Errorf("Overruns() = %d; want 1", n)
	}
}

func TestShutdownNamesStuckHandlers(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	release := make(chan struct{})
	entered := make(chan struct{})
	hook := handlerFunc(func(context.Context, string) error { close(entered); <-release; return nil })
	srv := newServer(t, hook, greeter.WithLogger(logs.logger()), greeter.WithServerDeadlines(greeter.DeadlinePolicy{}))
	c := newClient(t, srv, greeter.WithDefaultTimeout(0))
	done := make(chan error, 1)
	go func() { _, err := c.SayHelloAgain(bareContext(t), "you"); done <- err }()
	<-entered
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Server.Shutdown(sctx) }()
	r := logs.await(ctx, t, "shutdown: grace period over, stopping handlers still running")
	if h := logAttr(r, "handlers"); !strings.Contains(h, "/Greeter/SayHelloAgain") {
		t.Errorf("shutdown log names %q; want /Greeter/SayHelloAgain", h)
	}
	// Shutdown returns once the handler does: grpc cannot end a goroutine
	// that ignores its context.
	close(release)
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v; want context.DeadlineExceeded after forcing the stop", err)
	}
	<-done // the call's result depends on whether Stop or the handler came first
}

func TestPerAttemptTimeout(t *testing.T) {
	// hang makes the first `stuck` attempts wait for their end: a server
	// that is slow on some attempts only.
	hang := func(stuck int64, calls *atomic.Int64) greeter.ServerOption {
		return greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if calls.Add(1) <= stuck {
				<-ctx.Done()
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return h(ctx, req)
		})
	}
	t.Run("second attempt succeeds", func(t *testing.T) {
		ctx := testContext(t)
		var calls atomic.Int64
		c := newClient(t, newServer(t, hang(1, &calls)), greeter.WithPerAttemptTimeout(100*time.Millisecond, 3))
		start := time.Now()
		got, err := c.SayHello(ctx, "you")
		if err != nil || got != "Hello, you!" {
			t.Fatalf("SayHello = %q, %v; want success on the second attempt", got, err)
		}
		assertWithin(t, "elapsed", time.Since(start), 100*time.Millisecond, 200*time.Millisecond)
		if n := calls.Load(); n != 2 {
			t.Errorf("server saw %d attempts; want 2", n)
		}
	})
	t.Run("all attempts time out", func(t *testing.T) {
		ctx := testContext(t)
		var calls atomic.Int64
		c := newClient(t, newServer(t, hang(100, &calls)), greeter.WithPerAttemptTimeout(50*time.Millisecond, 3))
		_, err := c.SayHello(ctx, "you")
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Source != greeter.SourcePerAttempt || de.Budget != 50*time.Millisecond || de.Attempts != 3 || de.LastCode != codes.DeadlineExceeded {
			t.Errorf("Source %v, Budget %v, Attempts %d, LastCode %v; want per-attempt timeout, 50ms, 3, DeadlineExceeded", de.Source, de.Budget, de.Attempts, de.LastCode)
		}
		if n := calls.Load(); n != 3 {
			t.Errorf("server saw %d attempts; want 3", n)
		}
	})
	t.Run("never past the overall deadline", func(t *testing.T) {
		ctx := testContext(t)
		var calls atomic.Int64
		c := newClient(t, newServer(t, hang(100, &calls)), greeter.WithPerAttemptTimeout(100*time.Millisecond, 10))
		cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.SayHello(cctx, "you")
		elapsed := time.Since(start)
		if elapsed > 250*time.Millisecond+timeSlack {
			t.Errorf("call took %v; want at most its 250ms deadline (+timeSlack)", elapsed)
		}
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Attempts < 2 || de.Attempts > 3 || de.LastCode != codes.DeadlineExceeded {
			t.Errorf("Attempts %d, LastCode %v; want 2 or 3 attempts in 250ms, DeadlineExceeded (%v)", de.Attempts, de.LastCode, err)
		}
	})
	t.Run("later attempt cut by the call's deadline blames the call's", func(t *testing.T) {
		// The first attempt runs out of its own 100ms; the second starts
		// with about 55ms of the call's 180ms left, less than its own,
		// and the call's deadline ends it.
		ctx := testContext(t)
		var calls atomic.Int64
		c := newClient(t, newServer(t, hang(100, &calls)), greeter.WithPerAttemptTimeout(100*time.Millisecond, 3))
		cctx, cancel := context.WithTimeout(ctx, 180*time.Millisecond)
		defer cancel()
		_, err := c.SayHello(cctx, "you")
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Attempts != 2 || de.Source != greeter.SourceCaller || de.Budget > 180*time.Millisecond {
			t.Errorf("Attempts %d, Source %v, Budget %v; want 2 attempts, the caller's 180ms context (%v)", de.Attempts, de.Source, de.Budget, err)
		}
	})
	t.Run("unavailable is retried, keeps its code", func(t *testing.T) {
		ctx := testContext(t)
		c, err := greeter.NewClient(unusedLocalAddr(t), greeter.WithInsecure(), greeter.WithPerAttemptTimeout(100*time.Millisecond, 3))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.SayHello(ctx, "you")
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "3 attempts") {
			t.Errorf("SayHello to nothing = %v; want Unavailable after 3 attempts", err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		if _, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithPerAttemptTimeout(0, 3)); err == nil {
			t.Error("NewClient(WithPerAttemptTimeout(0, 3)) = nil error; want one")
		}
	})
}

// unusedLocalAddr returns a free 127.0.0.1 address with nothing listening.
func unusedLocalAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestWaitForReadyBoundedByDeadline(t *testing.T) {
	t.Run("server down: fails at the deadline, waiting for a connection", func(t *testing.T) {
		ctx := testContext(t)
		c, err := greeter.NewClient(unusedLocalAddr(t), greeter.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = c.SayHello(cctx, "you", grpc.WaitForReady(true))
		assertWithin(t, "time to DeadlineExceeded", time.Since(start), 200*time.Millisecond, 200*time.Millisecond)
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Phase != greeter.PhaseConnecting {
			t.Errorf("Phase = %v; want waiting for a connection (%v)", de.Phase, err)
		}
	})
	t.Run("server up in time: succeeds", func(t *testing.T) {
		ctx := testContext(t)
		addr := unusedLocalAddr(t)
		c, err := greeter.NewClient(addr, greeter.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		res := make(chan error, 1)
		go func() {
			_, err := c.SayHello(ctx, "you", grpc.WaitForReady(true))
			res <- err
		}()
		// The call is waiting once the channel has failed to connect.
		for s := c.Conn().GetState(); s != connectivity.TransientFailure; s = c.Conn().GetState() {
			if !c.Conn().WaitForStateChange(ctx, s) {
				t.Fatal("channel never failed to connect")
			}
		}
		srv, err := greeter.NewServer()
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(lis)
		defer srv.Shutdown(ctx)
		if err := <-res; err != nil {
			t.Fatalf("SayHello with wait-for-ready: %v; want success once the server is up", err)
		}
	})
}

func TestStreamDeadline(t *testing.T) {
	t.Run("server stream", func(t *testing.T) {
		ctx := testContext(t)
		c := newClient(t, newServer(t, greeter.WithDelay(100*time.Millisecond), greeter.WithStreamReplies(5)))
		cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		stream, err := c.SayHelloStreamReply(cctx, "you")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			r, err := stream.Recv()
			if err != nil {
				de := deadlineError(t, err, codes.DeadlineExceeded)
				if de.Source != greeter.SourceCaller {
					t.Errorf("Source %v; want caller's context", de.Source)
				}
				break
			}
			got = append(got, r.GetMessage())
		}
		if len(got) != 2 || got[0] != "Hello, you! (1/5)" {
			t.Errorf("replies before the deadline = %q; want the first 2 of 5", got)
		}
	})
	t.Run("bidi stream", func(t *testing.T) {
		ctx := testContext(t)
		c := newClient(t, newServer(t, greeter.WithDelay(100*time.Millisecond)))
		cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		stream, err := c.SayHelloBidiStream(cctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a", "b", "c", "d", "e"} {
			if err := stream.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		var got []string
		for {
			r, err := stream.Recv()
			if err != nil {
				deadlineError(t, err, codes.DeadlineExceeded)
				break
			}
			got = append(got, r.GetMessage())
		}
		if len(got) != 2 {
			t.Errorf("replies before the deadline = %q; want 2", got)
		}
	})
}

func TestStreamIdleTimeout(t *testing.T) {
	t.Run("moving stream outlives the idle timeout", func(t *testing.T) {
		ctx := testContext(t)
		c := newClient(t, newServer(t, greeter.WithDelay(50*time.Millisecond), greeter.WithStreamReplies(8)),
			greeter.WithStreamIdleTimeout(300*time.Millisecond))
		stream, err := c.SayHelloStreamReply(ctx, "you")
		if err != nil {
			t.Fatal(err)
		}
		// Each gap is under the idle timeout, so the stream runs to its end.
		if n := len(recvAll(t, stream)); n != 8 {
			t.Errorf("got %d replies; want 8", n)
		}
	})
	t.Run("idle stream ends", func(t *testing.T) {
		ctx := testContext(t)
		c := newClient(t, newServer(t, greeter.WithDelay(workForever)), greeter.WithStreamIdleTimeout(100*time.Millisecond))
		start := time.Now()
		stream, err := c.SayHelloBidiStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&greeterpb.HelloRequest{Name: "you"}); err != nil {
			t.Fatal(err)
		}
		assertRecvDeadline(t, func() error { _, err := stream.Recv(); return err }, start, greeter.SourceStreamIdle, 100*time.Millisecond)
	})
	t.Run("negative is refused", func(t *testing.T) {
		_, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithStreamIdleTimeout(-time.Second))
		if err == nil || !strings.Contains(err.Error(), "WithStreamIdleTimeout(-1s)") {
			t.Errorf("NewClient(WithStreamIdleTimeout(-1s)) error = %v; want one naming the option", err)
		}
	})
}

// TestStreamDefaultIdleTimeout checks that a stream whose context has no
// deadline gets the client's default timeout as an idle timeout, that a
// stream with a deadline does not, and that the importer can opt out.
func TestStreamDefaultIdleTimeout(t *testing.T) {
	t.Run("no deadline: the default bounds silences", func(t *testing.T) {
		c := newClient(t, newServer(t, greeter.WithDelay(workForever)), greeter.WithDefaultTimeout(100*time.Millisecond))
		// No deadline, but a cancel that ends the test should the
		// default not bound the stream.
		ctx, cancel := context.WithCancel(context.Background())
		defer time.AfterFunc(defaultTestTimeout, cancel).Stop()
		defer cancel()
		start := time.Now()
		stream, err := c.SayHelloStreamReply(ctx, "you")
		if err != nil {
			t.Fatal(err)
		}
		assertRecvDeadline(t, func() error { _, err := stream.Recv(); return err }, start, greeter.SourceStreamIdle, 100*time.Millisecond)
	})
	// Gaps of 150ms between replies, longer than the 100ms default: only
	// streams without the default run to their end.
	slow := greeter.WithDelay(150 * time.Millisecond)
	for _, tt := range []struct {
		name string
		ctx  func(t *testing.T) context.Context
		opts []greeter.ClientOption
	}{
		{"a deadline: no default", testContext, []greeter.ClientOption{greeter.WithDefaultTimeout(100 * time.Millisecond)}},
		{"opted out with WithDefaultTimeout(0)", bareContext, []greeter.ClientOption{greeter.WithDefaultTimeout(0)}},
		{"opted out with WithStreamIdleTimeout(0)", bareContext, []greeter.ClientOption{greeter.WithDefaultTimeout(100 * time.Millisecond), greeter.WithStreamIdleTimeout(0)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, newServer(t, slow), tt.opts...)
			stream, err := c.SayHelloStreamReply(tt.ctx(t), "you")
			if err != nil {
				t.Fatal(err)
			}
			if n := len(recvAll(t, stream)); n != greeter.DefaultStreamReplies {
				t.Errorf("got %d replies; want %d", n, greeter.DefaultStreamReplies)
			}
		})
	}
}

// TestStreamServerCap checks the server's cap on a bidi stream whose handler
// is blocked in Recv, waiting for a client that sends nothing and set no
// deadline: the cap still ends it.
func TestStreamServerCap(t *testing.T) {
	ctx := bareContext(t)
	c := newClient(t, newServer(t, greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: 100 * time.Millisecond})))
	start := time.Now()
	stream, err := c.SayHelloBidiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertRecvDeadline(t, func() error { _, err := stream.Recv(); return err }, start, greeter.SourceServerCap, 100*time.Millisecond)
}
