package greeter_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// startTCPGreeter serves a greeter server built with opts on 127.0.0.1:0 and
// returns it with its address; it is stopped at the end of the test.
func startTCPGreeter(t testing.TB, opts ...greeter.ServerOption) (*greeter.Server, string) {
	t.Helper()
	srv, err := greeter.NewServer(opts...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stop hard: the test is over
		_ = srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

// attempts records, for each call that reaches the server, the value of
// grpc-previous-rpc-attempts ("" on a first attempt).
type attempts struct {
	mu   sync.Mutex
	seen []string
}

func (a *attempts) record(ctx context.Context) {
	v := ""
	if vs := metadata.ValueFromIncomingContext(ctx, "grpc-previous-rpc-attempts"); len(vs) > 0 {
		v = vs[0]
	}
	a.mu.Lock()
	a.seen = append(a.seen, v)
	a.mu.Unlock()
}

func (a *attempts) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.seen
	a.seen = nil
	return s
}

// serverOptions returns interceptors that record every attempt, unary and
// streaming, before any greeter policy (fault injection included) runs.
func (a *attempts) serverOptions() []greeter.ServerOption {
	return []greeter.ServerOption{
		greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			a.record(ctx)
			return h(ctx, req)
		}),
		greeter.WithStreamServerInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			a.record(ss.Context())
			return h(srv, ss)
		}),
	}
}
