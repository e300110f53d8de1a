package greeter_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/greetertest"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// defaultTestTimeout bounds every test's context: long enough never to fire
// on a loaded machine, short enough that a hang fails instead of stalling CI.
const defaultTestTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newServer starts a greetertest server closed at the end of the test.
func newServer(t *testing.T, opts ...greeter.ServerOption) *greetertest.Server {
	t.Helper()
	return greetertest.NewServer(t, opts...)
}

// newClient returns a client of srv, closed with it.
func newClient(t *testing.T, srv *greetertest.Server, opts ...greeter.ClientOption) *greeter.Client {
	t.Helper()
	return srv.Client(t, opts...)
}

func TestUnary(t *testing.T) {
	ctx := testContext(t)
	for _, service := range []string{greeter.ServiceName, greeter.HelloworldServiceName} {
		t.Run(service, func(t *testing.T) {
			c := newClient(t, newServer(t), greeter.WithServiceName(service))
			got, err := c.SayHello(ctx, "you")
			if err != nil || got != "Hello, you!" {
				t.Fatalf("SayHello(you) = %q, %v; want %q, nil", got, err, "Hello, you!")
			}
			got, err = c.SayHelloAgain(ctx, "you")
			if err != nil || got != "Hello again, you!" {
				t.Fatalf("SayHelloAgain(you) = %q, %v; want %q, nil", got, err, "Hello again, you!")
			}
		})
	}
}

func TestOneCallClient(t *testing.T) {
	c := greetertest.NewClient(t)
	got, err := c.SayHello(testContext(t), "in-process")
	if err != nil || got != "Hello, in-process!" {
		t.Fatalf("SayHello = %q, %v", got, err)
	}
}

func TestServerStream(t *testing.T) {
	c := greetertest.NewClient(t, greeter.WithStreamReplies(4))
	stream, err := c.SayHelloStreamReply(testContext(t), "you")
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	got := recvAll(t, stream)
	want := []string{"Hello, you! (1/4)", "Hello, you! (2/4)", "Hello, you! (3/4)", "Hello, you! (4/4)"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// recvAll reads a server stream to its end and returns the replies'
// messages; any error but io.EOF fails the test.
func recvAll(t *testing.T, stream grpc.ServerStreamingClient[greeterpb.HelloReply]) []string {
	t.Helper()
	var got []string
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Recv after %d replies: %v", len(got), err)
		}
		got = append(got, r.GetMessage())
	}
}

func TestBidiStream(t *testing.T) {
	c := greetertest.NewClient(t)
	stream, err := c.SayHelloBidiStream(testContext(t))
	if err != nil {
		t.Fatalf("SayHelloBidiStream: %v", err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := stream.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
			t.Fatalf("Send(%s): %v", name, err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if want := "Hello, " + name + "!"; r.GetMessage() != want {
			t.Fatalf("reply = %q, want %q", r.GetMessage(), want)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("Recv after CloseSend = %v, want io.EOF", err)
	}
}

func TestInterceptorsRunInOrder(t *testing.T) {
	var order []string
	unaryServer := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			order = append(order, name+" "+info.FullMethod)
			return h(ctx, req)
		}
	}
	unaryClient := func(name string) grpc.UnaryClientInterceptor {
		return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			order = append(order, name+" "+method)
			return invoker(ctx, method, req, reply, cc, opts...)
		}
	}
	srv := newServer(t,
		greeter.WithUnaryServerInterceptor(unaryServer("s1")),
		greeter.WithUnaryServerInterceptor(unaryServer("s2")),
	)
	c := newClient(t, srv,
		greeter.WithServiceName(greeter.HelloworldServiceName),
		greeter.WithUnaryClientInterceptor(unaryClient("c1"), unaryClient("c2")),
	)
	if _, err := c.SayHello(testContext(t), "x"); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	want := []string{
		"c1 /helloworld.Greeter/SayHello", "c2 /helloworld.Greeter/SayHello",
		"s1 /helloworld.Greeter/SayHello", "s2 /helloworld.Greeter/SayHello",
	}
	if len(order) != len(want) {
		t.Fatalf("interceptors ran %q, want %q", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("interceptors ran %q, want %q", order, want)
		}
	}
}

func TestStreamInterceptors(t *testing.T) {
	var server, client string
	srv := newServer(t, greeter.WithStreamServerInterceptor(
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			server = info.FullMethod
			return h(srv, ss)
		}))
	c := newClient(t, srv, greeter.WithStreamClientInterceptor(
		func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			client = method
			return streamer(ctx, desc, cc, method, opts...)
		}))
	stream, err := c.SayHelloStreamReply(testContext(t), "x")
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	recvAll(t, stream)
	if want := "/Greeter/SayHelloStreamReply"; server != want || client != want {
		t.Fatalf("interceptors saw client %q, server %q; want %q", client, server, want)
	}
}

func TestDefaultTimeout(t *testing.T) {
	var deadline time.Duration
	srv := newServer(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			d, ok := ctx.Deadline()
			if !ok {
				deadline = -1
			} else {
				deadline = time.Until(d)
			}
			return h(ctx, req)
		}))
	tests := []struct {
		name     string
		opts     []greeter.ClientOption
		ctx      func() (context.Context, context.CancelFunc)
		min, max time.Duration // bounds on the deadline the server saw; -1 for none
	}{
		{"default applies", nil, noDeadline, greeter.DefaultTimeout - time.Second, greeter.DefaultTimeout},
		{"option applies", []greeter.ClientOption{greeter.WithDefaultTimeout(time.Minute)}, noDeadline, time.Minute - time.Second, time.Minute},
		{"caller's shorter deadline kept", []greeter.ClientOption{greeter.WithDefaultTimeout(time.Minute)}, withTimeout(5 * time.Second), 4 * time.Second, 5 * time.Second},
		{"caller's longer deadline kept", []greeter.ClientOption{greeter.WithDefaultTimeout(time.Second)}, withTimeout(time.Minute), time.Minute - time.Second, time.Minute},
		{"opt out", []greeter.ClientOption{greeter.WithDefaultTimeout(0)}, noDeadline, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv, tt.opts...)
			ctx, cancel := tt.ctx()
			defer cancel()
			if _, err := c.SayHello(ctx, "x"); err != nil {
				t.Fatalf("SayHello: %v", err)
			}
			if deadline < tt.min || deadline > tt.max {
				t.Fatalf("server saw deadline in %v, want within [%v, %v] (-1: none)", deadline, tt.min, tt.max)
			}
		})
	}
}

func noDeadline() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func withTimeout(d time.Duration) func() (context.Context, context.CancelFunc) {
	return func() (context.Context, context.CancelFunc) { return context.WithTimeout(context.Background(), d) }
}

func TestHealthAndReflection(t *testing.T) {
	srv := newServer(t)
	c := newClient(t, srv)
	ctx := testContext(t)
	hc := healthpb.NewHealthClient(c.Conn())
	for _, svc := range []string{"", greeter.ServiceName, greeter.HelloworldServiceName} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
	info := srv.Server.GRPCServer().GetServiceInfo()
	for _, svc := range []string{greeter.ServiceName, greeter.HelloworldServiceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if _, ok := info[svc]; !ok {
			t.Errorf("service %q not registered; have %v", svc, keys(info))
		}
	}

	noRefl := newServer(t, greeter.WithoutReflection())
	if _, ok := noRefl.Server.GRPCServer().GetServiceInfo()["grpc.reflection.v1.ServerReflection"]; ok {
		t.Errorf("WithoutReflection: reflection still registered")
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestRegisterOnOwnServer(t *testing.T) {
	gs := grpc.NewServer()
	if err := greeter.Register(gs); err != nil {
		t.Fatalf("Register: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c, err := greeter.NewClient(lis.Addr().String(), greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.SayHello(testContext(t), "own"); err != nil || got != "Hello, own!" {
		t.Fatalf("SayHello = %q, %v", got, err)
	}
}

func TestRawOptionsWin(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		// Raw server options reach grpc: a tiny receive limit makes
		// every request too large.
		srv := newServer(t, greeter.WithGRPCServerOptions(grpc.MaxRecvMsgSize(4)))
		_, err := newClient(t, srv).SayHello(testContext(t), "a name longer than four bytes")
		if got := status.Code(err); got != codes.ResourceExhausted {
			t.Fatalf("SayHello with MaxRecvMsgSize(4) = %v, want ResourceExhausted", err)
		}
	})
	t.Run("client", func(t *testing.T) {
		// Raw dial options come after greeter's own: this service
		// config replaces DefaultServiceConfig, and its 50ms method
		// timeout ends a call to a server that never answers.
		const sc = `{"methodConfig": [{"name": [{"service": "Greeter"}], "timeout": "0.05s"}]}`
		var sawRaw atomic.Bool
		srv := newServer(t, greeter.WithDelay(time.Hour), greeter.WithUnaryServerInterceptor(
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				md, _ := metadata.FromIncomingContext(ctx)
				sawRaw.Store(len(md.Get("x-raw")) == 1)
				return h(ctx, req)
			}))
		c := newClient(t, srv, greeter.WithDialOptions(
			grpc.WithDefaultServiceConfig(sc),
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(metadata.AppendToOutgoingContext(ctx, "x-raw", "1"), method, req, reply, cc, opts...)
			})))
		_, err := c.SayHello(testContext(t), "you")
		var de *greeter.DeadlineError
		if !errors.As(err, &de) || de.Source != greeter.SourceServiceConfig || de.Budget != 50*time.Millisecond {
			t.Fatalf("SayHello = %v; want DeadlineExceeded from the raw service config's 50ms timeout", err)
		}
		if !sawRaw.Load() {
			t.Error("the server saw no x-raw header: the raw interceptor did not run")
		}
	})
}

func TestNewClientValidates(t *testing.T) {
	tests := []struct {
		name string
		opts []greeter.ClientOption
	}{
		{"no transport security", nil},
		{"nil TLS config", []greeter.ClientOption{greeter.WithTLS(nil)}},
		{"TLS and insecure", []greeter.ClientOption{greeter.WithTLS(nil), greeter.WithInsecure()}},
		{"empty service name", []greeter.ClientOption{greeter.WithInsecure(), greeter.WithServiceName("")}},
		{"invalid service config", []greeter.ClientOption{greeter.WithInsecure(), greeter.WithServiceConfig(`{"methodConfig": 7}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := greeter.NewClient("localhost:50051", tt.opts...)
			if err == nil {
				c.Close()
				t.Fatalf("NewClient succeeded, want an error")
			}
			t.Logf("error: %v", err)
		})
	}
	// Credentials through the escape hatch count as a choice.
	c, err := greeter.NewClient("localhost:50051", greeter.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatalf("NewClient with raw credentials: %v", err)
	}
	c.Close()
}

func TestNewServerValidates(t *testing.T) {
	for _, opt := range []greeter.ServerOption{greeter.WithTLS(nil), greeter.WithStreamReplies(0), greeter.WithLogger(nil)} {
		if _, err := greeter.NewServer(opt); err == nil {
			t.Errorf("NewServer accepted an invalid option")
		}
		if err := greeter.Register(grpc.NewServer(), opt); err == nil {
			t.Errorf("Register accepted an invalid option")
		}
	}
}

func TestShutdownForcedByContext(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := newServer(t, greeter.WithUnaryServerInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			started <- struct{}{}
			<-ctx.Done() // a call that would never finish on its own
			return nil, status.FromContextError(ctx.Err()).Err()
		}))
	c := newClient(t, srv)
	done := make(chan error, 1)
	go func() {
		_, err := c.SayHello(testContext(t), "stuck")
		done <- err
	}()
	<-started
	sctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
	defer cancel()
	if err := srv.Server.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if err := <-done; status.Code(err) == codes.OK {
		t.Fatalf("stuck call succeeded after a forced stop")
	}
}
