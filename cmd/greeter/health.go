package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// The exit codes of greeter health: grpc-health-probe's, so that a probe
// written for one works with the other.
const (
	healthServing    = 0 // the service is SERVING
	healthBadArgs    = 1 // bad flags
	healthNoConn     = 2 // no connection to the server
	healthRPCFailed  = 3 // connected, but the Check call failed
	healthNotServing = 4 // the server answered a status other than SERVING
)

// healthExitCodes is the end of greeter health --help.
const healthExitCodes = `
Exit codes (those of grpc-health-probe):
  0  SERVING
  1  bad flags
  2  no connection to the server within --timeout (refused, unreachable, TLS handshake failed)
  3  connected, but the check failed: the gRPC code on stderr, such as NotFound for an
     unknown --service, Unimplemented for a server without the health service,
     DeadlineExceeded for no answer within --timeout
  4  the server answered, with a status other than SERVING (printed on stdout)
`

// runHealth asks a server's standard health service for the status of one
// service, like grpc-health-probe, and exits with grpc-health-probe's codes
// (healthExitCodes). It prints the status on stdout, an error on stderr.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("health", "[flags]", stderr)
	addUsageNotes(fs, healthExitCodes)
	addr := fs.String("addr", "localhost:50051", addrUsage)
	service := fs.String("service", "", "service `name` to check (\"\" for the whole server, or Greeter)")
	timeout := fs.Duration("timeout", time.Second, "deadline for connecting and checking")
	tlsFlags := addClientTLSFlags(fs)
	if code, ok := parse(fs, args); !ok {
		if code == 2 {
			return healthBadArgs
		}
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "greeter health: --timeout %v: must be positive\n", *timeout)
		return healthBadArgs
	}
	transport, err := tlsFlags.option()
	if err != nil {
		fmt.Fprintf(stderr, "greeter health: %v\n", err)
		return healthBadArgs
	}
	c, err := greeter.NewClient(*addr, transport)
	if err != nil {
		fmt.Fprintf(stderr, "greeter health: %v\n", err)
		return healthBadArgs
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	connected := waitReady(ctx, c.Conn())
	// Not WaitForReady: a connection that failed fails the call at once,
	// with the reason.
	resp, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		return healthError(stderr, *addr, *timeout, connected, err)
	}
	fmt.Fprintln(stdout, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return healthNotServing
	}
	return healthServing
}

// healthError reports a failed check on stderr and returns its exit code:
// healthNoConn when the connection never came up, healthRPCFailed when the
// server was reached.
func healthError(stderr io.Writer, addr string, timeout time.Duration, connected bool, err error) int {
	st := status.Convert(err)
	if !connected && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded) {
		msg := st.Message()
		if st.Code() == codes.DeadlineExceeded {
			msg = fmt.Sprintf("not connected within --timeout %v", timeout)
		}
		fmt.Fprintf(stderr, "greeter health: no connection to %s: %s\n", addr, msg)
		return healthNoConn
	}
	msg := st.Message()
	if st.Code() == codes.Unimplemented {
		msg += " (the server does not serve the health service grpc.health.v1.Health)"
	}
	fmt.Fprintf(stderr, "%s: %s\n", st.Code(), msg)
	return healthRPCFailed
}

// waitReady starts conn's connection and waits, until ctx is done, for it to
// be ready. It reports false when the connection failed (its next call
// fails at once with the reason) or ctx ended first.
func waitReady(ctx context.Context, conn *grpc.ClientConn) bool {
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if s == connectivity.TransientFailure || !conn.WaitForStateChange(ctx, s) {
			return false
		}
	}
	return true
}
