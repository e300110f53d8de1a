package main

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"github.com/grpc-greeter/greeter"
	"google.golang.org/protobuf/proto"
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

// loadReportHeader is the trailer that carries a server's ORCA load report
// (see serve --load-reports).
const loadReportHeader = "endpoint-load-metrics-bin"

// loadReportText shows an ORCA load report as text, for call -v.
func loadReportText(key, value string) (string, bool) {
	if key != loadReportHeader {
		return "", false
	}
	var lr v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(value), &lr); err != nil {
		return "", false
	}
	parts := []string{
		fmt.Sprintf("cpu_utilization=%.3g", lr.GetCpuUtilization()),
		fmt.Sprintf("mem_utilization=%.3g", lr.GetMemUtilization()),
		fmt.Sprintf("application_utilization=%.3g", lr.GetApplicationUtilization()),
		fmt.Sprintf("rps_fractional=%.4g", lr.GetRpsFractional()),
	}
	for _, m := range []map[string]float64{lr.GetUtilization(), lr.GetNamedMetrics()} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s=%.4g", k, m[k]))
		}
	}
	return strings.Join(parts, " "), true
}
