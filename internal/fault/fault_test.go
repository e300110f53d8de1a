package fault_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/fault"
	"github.com/grpc-greeter/greeter/internal/wire"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// defaultTestTimeout bounds every test's context.
const defaultTestTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// attemptContext is a server context of the attempt whose header is
// previous; "" sends no header (a first attempt).
func attemptContext(t *testing.T, previous string) context.Context {
	ctx := testContext(t)
	if previous != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(wire.PreviousAttemptsHeader, previous))
	}
	return ctx
}

var unaryInfo = &grpc.UnaryServerInfo{FullMethod: "/test.Service/Unary"}

func TestUnaryFailsFirstAttempts(t *testing.T) {
	const n = 3
	tests := []struct {
		previous string // the grpc-previous-rpc-attempts header; "" for none
		fails    bool
		attempt  int // the attempt the message names when it fails
	}{
		{"", true, 1},
		{"0", true, 1},
		{"1", true, 2},
		{"2", true, 3},
		{"3", false, 0},
		{"4", false, 0},
		{"100", false, 0},
		// A malformed header counts as a first attempt.
		{"x", true, 1},
		{"-2", true, 1},
		{"1.5", true, 1},
	}
	interceptor := fault.UnaryServerInterceptor(n)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("previous=%q", tt.previous), func(t *testing.T) {
			var called atomic.Int32
			handler := func(ctx context.Context, req any) (any, error) {
				called.Add(1)
				return "reply to " + req.(string), nil
			}
			resp, err := interceptor(attemptContext(t, tt.previous), "req", unaryInfo, handler)
			if !tt.fails {
				if err != nil || resp != "reply to req" || called.Load() != 1 {
					t.Fatalf("interceptor = %v, %v (handler called %d times); want the handler's reply", resp, err, called.Load())
				}
				return
			}
			if status.Code(err) != codes.Unavailable || resp != nil {
				t.Fatalf("interceptor = %v, %v; want nil, Unavailable", resp, err)
			}
			if called.Load() != 0 {
				t.Fatalf("handler called on a failed attempt")
			}
			msg := status.Convert(err).Message()
			if want := fmt.Sprintf("attempt %d of the first %d", tt.attempt, n); !strings.Contains(msg, want) {
				t.Fatalf("message %q does not name the attempt: want it to contain %q", msg, want)
			}
		})
	}
}

func TestZeroFailsNothing(t *testing.T) {
	handler := func(ctx context.Context, req any) (any, error) { return "ok", nil }
	if resp, err := fault.UnaryServerInterceptor(0)(attemptContext(t, ""), nil, unaryInfo, handler); err != nil || resp != "ok" {
		t.Fatalf("UnaryServerInterceptor(0) = %v, %v; want ok, nil", resp, err)
	}
	stream := &serverStream{ctx: attemptContext(t, "")}
	if err := fault.StreamServerInterceptor(0)(nil, stream, streamInfo, func(any, grpc.ServerStream) error { return nil }); err != nil {
		t.Fatalf("StreamServerInterceptor(0) = %v, want nil", err)
	}
}

func TestHandlerErrorPassesThrough(t *testing.T) {
	want := status.Error(codes.NotFound, "no such greeting")
	handler := func(ctx context.Context, req any) (any, error) { return nil, want }
	if _, err := fault.UnaryServerInterceptor(1)(attemptContext(t, "1"), nil, unaryInfo, handler); err != want {
		t.Fatalf("interceptor = %v, want the handler's %v", err, want)
	}
}

// serverStream is a grpc.ServerStream with only a context.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

var streamInfo = &grpc.StreamServerInfo{FullMethod: "/test.Service/Stream", IsServerStream: true}

func TestStreamFailsFirstAttempts(t *testing.T) {
	const n = 2
	interceptor := fault.StreamServerInterceptor(n)
	for _, tt := range []struct {
		previous string
		fails    bool
		attempt  int
	}{
		{"", true, 1},
		{"1", true, 2},
		{"2", false, 0},
		{"garbage", true, 1},
	} {
		t.Run(fmt.Sprintf("previous=%q", tt.previous), func(t *testing.T) {
			ss := &serverStream{ctx: attemptContext(t, tt.previous)}
			var got grpc.ServerStream
			err := interceptor("srv", ss, streamInfo, func(srv any, s grpc.ServerStream) error {
				got = s
				return nil
			})
			if !tt.fails {
				if err != nil || got != ss {
					t.Fatalf("interceptor = %v (handler got stream %v); want the handler run on the stream", err, got)
				}
				return
			}
			if status.Code(err) != codes.Unavailable || got != nil {
				t.Fatalf("interceptor = %v (handler ran: %v); want Unavailable without the handler", err, got != nil)
			}
			if want := fmt.Sprintf("attempt %d of the first %d", tt.attempt, n); !strings.Contains(status.Convert(err).Message(), want) {
				t.Fatalf("message %q does not contain %q", status.Convert(err).Message(), want)
			}
		})
	}
}

// stubGreeter answers SayHello with sayHello.
type stubGreeter struct {
	greeterpb.UnimplementedGreeterServer
	sayHello func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)
}

func (s *stubGreeter) SayHello(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return s.sayHello(ctx, r)
}

// retryConfig makes grpc retry UNAVAILABLE up to maxAttempts attempts.
func retryConfig(maxAttempts int) string {
	return fmt.Sprintf(`{"methodConfig": [{"name": [{"service": "Greeter"}], "retryPolicy": {
		"maxAttempts": %d, "initialBackoff": "0.001s", "maxBackoff": "0.001s", "backoffMultiplier": 1,
		"retryableStatusCodes": ["UNAVAILABLE"]}}]}`, maxAttempts)
}

// TestWithGRPCRetries is what the package is for: grpc's own retries get
// through the failures, and the handler runs on the attempt after them.
func TestWithGRPCRetries(t *testing.T) {
	const n = 2
	lis := bufconn.Listen(1 << 20)
	var attempts atomic.Int32 // handler runs
	var sawPrevious atomic.Int32
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			attempts.Add(1)
			return h(ctx, req)
		},
		fault.UnaryServerInterceptor(n)))
	greeterpb.RegisterGreeterServer(gs, &stubGreeter{sayHello: func(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
		sawPrevious.Store(int32(wire.PreviousAttempts(ctx)))
		return &greeterpb.HelloReply{Message: "Hello, " + r.GetName()}, nil
	}})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	dial := func(maxAttempts int) greeterpb.GreeterClient {
		cc, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(retryConfig(maxAttempts)))
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		t.Cleanup(func() { cc.Close() })
		return greeterpb.NewGreeterClient(cc)
	}
	ctx := testContext(t)

	attempts.Store(0)
	reply, err := dial(n+1).SayHello(ctx, &greeterpb.HelloRequest{Name: "retry"})
	if err != nil || reply.GetMessage() != "Hello, retry" {
		t.Fatalf("SayHello with %d attempts = %v, %v; want success", n+1, reply, err)
	}
	if got := attempts.Load(); got != n+1 {
		t.Errorf("server saw %d attempts, want %d", got, n+1)
	}
	if got := sawPrevious.Load(); got != n {
		t.Errorf("handler ran on the attempt with %d previous, want %d", got, n)
	}

	attempts.Store(0)
	_, err = dial(n).SayHello(ctx, &greeterpb.HelloRequest{Name: "retry"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), fmt.Sprintf("attempt %d of the first %d", n, n)) {
		t.Fatalf("SayHello with %d attempts = %v; want Unavailable from attempt %d", n, err, n)
	}
	if got := attempts.Load(); got != n {
		t.Errorf("server saw %d attempts, want %d", got, n)
	}
}
