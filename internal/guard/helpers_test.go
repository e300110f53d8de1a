package guard_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/guard"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// defaultTestTimeout bounds every test's context and every wait.
const defaultTestTimeout = 10 * time.Second

// slack is what a wall-clock upper bound allows on a loaded machine:
// two busy cores under the race detector.
const slack = time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// noDeadline is a context without a deadline, for calls that must reach the
// server without one; a watchdog cancels it after defaultTestTimeout so that
// no call can hang the test.
func noDeadline(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	watchdog := time.AfterFunc(defaultTestTimeout, cancel)
	t.Cleanup(func() {
		watchdog.Stop()
		cancel()
	})
	return ctx, cancel
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

// record is one log record, its attributes by key.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

// recorder is a slog.Handler that keeps every record, at every level.
type recorder struct {
	mu      sync.Mutex
	records []record
	notify  chan struct{} // signalled after each record
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]slog.Value{}
	rec.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.Resolve()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, record{rec.Level, rec.Message, attrs})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r } // the guard adds none
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// find returns the records with message msg.
func (r *recorder) find(msg string) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []record
	for _, rec := range r.records {
		if rec.msg == msg {
			found = append(found, rec)
		}
	}
	return found
}

// count returns how many records have level.
func (r *recorder) count(level slog.Level) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.level == level {
			n++
		}
	}
	return n
}

// await returns the first record with message msg, waiting for it up to
// defaultTestTimeout.
func (r *recorder) await(t *testing.T, msg string) record {
	t.Helper()
	timeout := time.After(defaultTestTimeout)
	for {
		if found := r.find(msg); len(found) > 0 {
			return found[0]
		}
		select {
		case <-r.notify:
		case <-timeout:
			t.Fatalf("no log record %q after %v", msg, defaultTestTimeout)
		}
	}
}

// awaitNone fails the test if a record with message msg comes within d.
func (r *recorder) awaitNone(t *testing.T, msg string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		if found := r.find(msg); len(found) > 0 {
			t.Fatalf("log record %q %v, want none", msg, found[0].attrs)
		}
		select {
		case <-r.notify:
		case <-timeout:
			return
		}
	}
}

// stubGreeter is a Greeter server whose methods do what its fields say;
// unary serves both SayHello and SayHelloAgain.
type stubGreeter struct {
	greeterpb.UnimplementedGreeterServer
	unary        func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)
	serverStream func(*greeterpb.HelloRequest, grpc.ServerStreamingServer[greeterpb.HelloReply]) error
	bidi         func(grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error
}

func (s *stubGreeter) SayHello(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return s.unary(ctx, r)
}

func (s *stubGreeter) SayHelloAgain(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return s.unary(ctx, r)
}

func (s *stubGreeter) SayHelloStreamReply(r *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	return s.serverStream(r, stream)
}

func (s *stubGreeter) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
	return s.bidi(stream)
}

// helloworldService is the Greeter service under the name of grpc's
// examples, "helloworld.Greeter": the same method names in another service.
const helloworldService = "helloworld.Greeter"

// helloworldDesc is a hand-written ServiceDesc of the unary methods under
// helloworldService. (Greeter_ServiceDesc under another name would not do:
// its generated handlers tell interceptors "/Greeter/..." whatever the name.)
func helloworldDesc() *grpc.ServiceDesc {
	unary := func(name string, call func(*stubGreeter, context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)) grpc.MethodDesc {
		return grpc.MethodDesc{
			MethodName: name,
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(greeterpb.HelloRequest)
				if err := dec(in); err != nil {
					return nil, err
				}
				handler := func(ctx context.Context, req any) (any, error) {
					return call(srv.(*stubGreeter), ctx, req.(*greeterpb.HelloRequest))
				}
				if interceptor == nil {
					return handler(ctx, in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + helloworldService + "/" + name}, handler)
			},
		}
	}
	return &grpc.ServiceDesc{
		ServiceName: helloworldService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary("SayHello", (*stubGreeter).SayHello),
			unary("SayHelloAgain", (*stubGreeter).SayHelloAgain),
		},
	}
}

// guarded is a guard and its logs, on a bufconn server of srv.
type guarded struct {
	g    *guard.Guard
	logs *recorder
	cc   *grpc.ClientConn
	c    greeterpb.GreeterClient
}

// newGuarded serves srv, as "Greeter" and as "helloworld.Greeter", behind a
// Guard for cfg (its Logger records into logs); everything stops with the
// test.
func newGuarded(t *testing.T, cfg guard.Config, srv *stubGreeter) *guarded {
	t.Helper()
	logs := newRecorder()
	cfg.Logger = slog.New(logs)
	g := guard.New(cfg)
	t.Cleanup(g.Stop) // after the server has stopped: cleanups run last first

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(g.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(g.StreamServerInterceptor()))
	greeterpb.RegisterGreeterServer(gs, srv)
	gs.RegisterService(helloworldDesc(), srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return &guarded{g: g, logs: logs, cc: cc, c: greeterpb.NewGreeterClient(cc)}
}

// errorInfo returns the ErrorInfo detail of err's status, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}
