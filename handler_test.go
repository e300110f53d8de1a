package greeter_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// An importer's own Greeter, served with WithHandler, gets greeter's server
// features around it: the deadline policy and its errors, recovery, request
// ids, fault injection, simulated work.
func TestWithHandlerGetsServerFeatures(t *testing.T) {
	t.Run("server cap", func(t *testing.T) {
		srv := newServer(t, greeter.WithHandler(stubGreeter{before: untilEnd(nil)}),
			greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: 100 * time.Millisecond}))
		_, err := newClient(t, srv).SayHello(testContext(t), "you")
		de := deadlineError(t, err, codes.DeadlineExceeded)
		if de.Source != greeter.SourceServerCap || de.Budget != 100*time.Millisecond {
			t.Errorf("Source %v, Budget %v; want the server's cap of 100ms (%v)", de.Source, de.Budget, err)
		}
		if n := srv.Server.Overruns(); n != 0 {
			t.Errorf("Overruns() = %d; the handler stopped with its context", n)
		}
	})
	t.Run("panic recovered", func(t *testing.T) {
		logs := newLogRecorder()
		srv := newServer(t, greeter.WithLogger(logs.logger()), handlerFunc(func(_ context.Context, method string) error {
			if strings.HasSuffix(method, "/SayHelloAgain") {
				panic("importer's bug")
			}
			return nil
		}))
		c := newClient(t, srv)
		_, err := c.SayHelloAgain(testContext(t), "you")
		if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "importer's bug") {
			t.Errorf("SayHelloAgain = %v; want Internal with nothing of the panic in it", err)
		}
		r := logs.await(testContext(t), t, "greeter: recovered from panic")
		if !strings.Contains(logAttr(r, "stack"), "stubGreeter") {
			t.Errorf("panic log has no stack through the handler: %q", logAttr(r, "stack"))
		}
		if got, err := c.SayHello(testContext(t), "you"); err != nil || got != "Hello, you!" {
			t.Errorf("after the panic, SayHello = %q, %v; want the server still serving", got, err)
		}
	})
	t.Run("request id", func(t *testing.T) {
		ids := make(chan string, 1)
		srv := newServer(t, greeter.WithRequestID(), handlerFunc(func(ctx context.Context, _ string) error {
			id, _ := greeter.RequestIDFromContext(ctx)
			ids <- id
			return nil
		}))
		if _, err := newClient(t, srv).SayHello(testContext(t), "you"); err != nil {
			t.Fatal(err)
		}
		if id := <-ids; id == "" {
			t.Error("the handler saw no request id")
		}
	})
	t.Run("fault injection and delay", func(t *testing.T) {
		srv := newServer(t, handlerFunc(nil), greeter.WithFailFirst(1), greeter.WithDelay(20*time.Millisecond))
		start := time.Now()
		got, err := newClient(t, srv).SayHello(testContext(t), "you") // retried by DefaultServiceConfig
		if err != nil || got != "Hello, you!" {
			t.Fatalf("SayHello = %q, %v; want the handler's greeting on the retry", got, err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("call took %v; want at least the 20ms of simulated work", d)
		}
	})
}

func TestWithHandlerOptionsRefused(t *testing.T) {
	up := newClient(t, newServer(t))
	for name, opts := range map[string][]greeter.ServerOption{
		"nil handler":          {greeter.WithHandler(nil)},
		"handler and upstream": {greeter.WithHandler(stubGreeter{}), greeter.WithUpstream(up)},
		"unknown name":         {greeter.WithServiceNames("hello.Greeter")},
		"no name":              {greeter.WithServiceNames()},
		"name twice":           {greeter.WithServiceNames(greeter.ServiceName, greeter.ServiceName)},
	} {
		if _, err := greeter.NewServer(opts...); err == nil || !strings.Contains(err.Error(), "greeter: With") {
			t.Errorf("%s: NewServer = %v; want an error naming the option", name, err)
		}
	}
}

// WithServiceNames serves the Greeter under the names picked, and health
// reports those.
func TestWithServiceNames(t *testing.T) {
	ctx := testContext(t)
	srv := newServer(t, greeter.WithServiceNames(greeter.HelloworldServiceName))
	if got, err := newClient(t, srv, greeter.WithServiceName(greeter.HelloworldServiceName)).SayHello(ctx, "you"); err != nil || got != "Hello, you!" {
		t.Errorf("helloworld.Greeter: SayHello = %q, %v; want a greeting", got, err)
	}
	_, err := newClient(t, srv).SayHello(ctx, "you")
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Greeter: SayHello = %v; want Unimplemented, it is not served", err)
	}
	h := healthpb.NewHealthClient(newClient(t, srv).Conn())
	if r, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: greeter.HelloworldServiceName}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health of helloworld.Greeter = %v, %v; want SERVING", r, err)
	}
	if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: greeter.ServiceName}); status.Code(err) != codes.NotFound {
		t.Errorf("health of Greeter = %v; want NotFound, it is not served", err)
	}
}

// helloworldDesc is the service upstream's helloworld example registers:
// the same methods under helloworld.Greeter.
func helloworldDesc() *grpc.ServiceDesc {
	d := greeterpb.Greeter_ServiceDesc
	d.ServiceName = greeter.HelloworldServiceName
	return &d
}

// upstreamGreeter answers as upstream's example server does.
type upstreamGreeter struct {
	greeterpb.UnimplementedGreeterServer
}

func (upstreamGreeter) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "Hello " + req.GetName()}, nil
}

// Register onto a grpc.Server that already serves helloworld.Greeter
// returns an error naming it and registers nothing, where grpc would end
// the process; with WithServiceNames it adds Greeter, and both answer.
func TestRegisterBesideUpstreamHelloworld(t *testing.T) {
	ctx := testContext(t)
	gs := grpc.NewServer()
	gs.RegisterService(helloworldDesc(), upstreamGreeter{})

	err := greeter.Register(gs)
	if err == nil || !strings.Contains(err.Error(), "helloworld.Greeter") || !strings.Contains(err.Error(), "WithServiceNames") {
		t.Fatalf("Register = %v; want an error naming helloworld.Greeter and the option that fixes it", err)
	}
	if _, ok := gs.GetServiceInfo()[greeter.ServiceName]; ok {
		t.Fatal("Register failed but registered Greeter")
	}
	if err := greeter.Register(gs, greeter.WithServiceNames(greeter.ServiceName)); err != nil {
		t.Fatalf("Register(WithServiceNames(Greeter)) = %v", err)
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
	for _, tt := range []struct{ service, want string }{
		{greeter.ServiceName, "Hello, you!"},
		{greeter.HelloworldServiceName, "Hello you"},
	} {
		c, err := greeter.NewClient(lis.Addr().String(), greeter.WithInsecure(), greeter.WithServiceName(tt.service))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := c.SayHello(ctx, "you"); err != nil || got != tt.want {
			t.Errorf("%s: SayHello = %q, %v; want %q", tt.service, got, err, tt.want)
		}
	}
}
