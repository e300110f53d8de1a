package greeter_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/greetertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// BenchmarkResilienceDefaults measures what greeter's default resilience
// features (retry policy and throttling in DefaultServiceConfig, panic
// recovery, name validation, keepalive settings) cost per unary call over
// bufconn, against plain grpc-go in the same run, and what turning the two
// per-call ones off saves.
//
//	go test -run '^$' -bench ResilienceDefaults -benchmem -count 5
func BenchmarkResilienceDefaults(b *testing.B) {
	b.Run("grpc-go", func(b *testing.B) {
		lis := bufconn.Listen(1 << 20)
		s := grpc.NewServer()
		greeterpb.RegisterGreeterServer(s, plainGreeter{})
		go s.Serve(lis)
		defer s.Stop()
		cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		c := greeterpb.NewGreeterClient(cc)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tt := range []struct {
		name   string
		server []greeter.ServerOption
		client []greeter.ClientOption
	}{
		{"greeter defaults", nil, nil},
		{"greeter no retry policy", nil, []greeter.ClientOption{greeter.WithServiceConfig("")}},
		{"greeter no recovery", []greeter.ServerOption{greeter.WithoutRecovery()}, nil},
		{"greeter neither", []greeter.ServerOption{greeter.WithoutRecovery()}, []greeter.ClientOption{greeter.WithServiceConfig("")}},
		// Opt-in features, for their price.
		{"greeter with request ids", []greeter.ServerOption{greeter.WithRequestID()}, nil},
		{"greeter with hedging", nil, []greeter.ClientOption{greeter.WithHedging(greeter.HedgingPolicy{MaxAttempts: 2, HedgingDelay: time.Second})}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			srv := newBenchServer(b, tt.server...)
			c := srv.Client(b, append(tt.client, greeter.WithDefaultTimeout(0))...)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.SayHello(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newBenchServer(b *testing.B, opts ...greeter.ServerOption) *greetertest.Server {
	b.Helper()
	return greetertest.NewServer(b, opts...)
}
