package main

import (
	"flag"
	"time"

	"github.com/grpc-greeter/greeter"
)

// lbUsage describes the --lb flag of call and bench.
const lbUsage = "load-balancing `policy` over the addresses the target resolves to: pick_first (grpc's default), round_robin, weighted_round_robin (needs servers with --load-reports) or " + greeter.LeastRequestBalancer

// addLBFlag adds --lb to a command that calls servers.
func addLBFlag(fs *flag.FlagSet) *string {
	return fs.String("lb", "", lbUsage)
}

// lbOptions are the client options --lb asks for.
func lbOptions(policy string) []greeter.ClientOption {
	if policy == "" {
		return nil
	}
	return []greeter.ClientOption{greeter.WithLoadBalancing(policy)}
}

// addLoadReportsFlag adds serve's --load-reports.
func addLoadReportsFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("load-reports", 0, "report load (CPU, memory, greetings per second and in flight) with ORCA, measured every `interval`, in each call's trailer and on the OpenRcaService stream, for clients with --lb weighted_round_robin (0: off)")
}

// loadReportOptions are the server options --load-reports asks for.
func loadReportOptions(interval time.Duration) []greeter.ServerOption {
	if interval <= 0 {
		return nil
	}
	return []greeter.ServerOption{greeter.WithLoadReports(interval)}
}
