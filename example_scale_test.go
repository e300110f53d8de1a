package greeter_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Three servers listed in a greeter:/// target, round robin: each serves
// its share of the calls.
func ExampleWithLoadBalancing() {
	var addrs []string
	var served [3]atomic.Int64
	for i := range served {
		addr, stop := serve(greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			served[i].Add(1)
			return h(ctx, req)
		}))
		defer stop()
		addrs = append(addrs, addr)
	}
	c, err := greeter.NewClient("greeter:///"+strings.Join(addrs, ","), greeter.WithInsecure(),
		greeter.WithLoadBalancing("round_robin"))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	// round_robin connects to all three, then takes them in turn.
	for served[0].Load() == 0 || served[1].Load() == 0 || served[2].Load() == 0 {
		if _, err := c.SayHello(ctx, "warm-up"); err != nil {
			panic(err)
		}
	}
	for i := range served {
		served[i].Store(0)
	}
	for range 30 {
		if _, err := c.SayHello(ctx, "fleet"); err != nil {
			panic(err)
		}
	}
	fmt.Println(served[0].Load(), served[1].Load(), served[2].Load())
	// Output:
	// 10 10 10
}

// A server with load reports puts one in each call's trailer (ORCA's
// endpoint-load-metrics-bin), for weighted_round_robin; the application
// adds its own utilization.
func ExampleWithLoadReports() {
	srv, err := greeter.NewServer(greeter.WithLoadReports(greeter.DefaultLoadReportInterval))
	if err != nil {
		panic(err)
	}
	srv.LoadRecorder().SetApplicationUtilization(0.5)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Shutdown(context.Background())

	c, err := greeter.NewClient(lis.Addr().String(), greeter.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var trailer metadata.MD
	if _, err := c.SayHello(context.Background(), "load", grpc.Trailer(&trailer)); err != nil {
		panic(err)
	}
	var report v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(trailer.Get("endpoint-load-metrics-bin")[0]), &report); err != nil {
		panic(err)
	}
	fmt.Println(report.GetApplicationUtilization(), report.GetNamedMetrics()[greeter.InFlightMetric])
	// Output:
	// 0.5 0
}
