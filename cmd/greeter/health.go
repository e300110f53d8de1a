package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/grpc-greeter/greeter"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// runHealth asks a server's standard health service for the status of one
// service, like grpc-health-probe: it prints the status and exits 0 only
// when it is SERVING, 1 otherwise (NOT_SERVING, unknown service, no
// answer), 2 on bad flags.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("health", "[flags]", stderr)
	addr := fs.String("addr", "localhost:50051", "server `address` (any gRPC target)")
	service := fs.String("service", "", "service `name` to check (\"\" for the whole server, or Greeter)")
	timeout := fs.Duration("timeout", time.Second, "deadline for the check")
	tlsFlags := addClientTLSFlags(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	transport, err := tlsFlags.option()
	if err != nil {
		fmt.Fprintf(stderr, "greeter health: %v\n", err)
		return 2
	}
	c, err := greeter.NewClient(*addr, transport)
	if err != nil {
		fmt.Fprintf(stderr, "greeter health: %v\n", err)
		return 2
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(stderr, "%s: %s\n", st.Code(), st.Message())
		return 1
	}
	fmt.Fprintln(stdout, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}
