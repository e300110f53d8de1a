package greeter

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter/internal/leastrequest"
	"github.com/grpc-greeter/greeter/internal/loadreport"
	greeterresolver "github.com/grpc-greeter/greeter/internal/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	// Linking grpc's weighted_round_robin in registers it, so that
	// WithLoadBalancing("weighted_round_robin") and service configs that
	// name it work.
	_ "google.golang.org/grpc/balancer/weightedroundrobin"
	"google.golang.org/grpc/orca"
)

// LeastRequestBalancer is the name of greeter's own load-balancing policy:
// each call goes to the ready backend with the fewest calls in flight from
// this client, ties broken in turn, so that a slow or stuck backend gets
// new calls only when every other is as busy. Select it with
// [WithLoadBalancing], or in a service config:
//
//	{"loadBalancingConfig": [{"greeter_least_request": {}}]}
//
// Importing greeter registers it with grpc's balancer registry (grpc has
// only a global one), under this name, which no other policy uses.
// Client-side health checking ([ServiceConfigWithHealthCheck]'s
// healthCheckConfig) works with it.
const LeastRequestBalancer = leastrequest.Name

// DefaultLoadReportInterval is how often a server with [WithLoadReports]
// measures its load unless given another interval.
const DefaultLoadReportInterval = time.Second

// InFlightMetric is the ORCA named metric in which a server with
// [WithLoadReports] reports the greetings (Greeter calls) in flight.
const InFlightMetric = loadreport.InFlightMetric

// LoadRecorder returns the recorder a server's ORCA load reports are made
// from, nil without [WithLoadReports]. Set the application's own metrics
// on it: SetApplicationUtilization (which grpc's weighted_round_robin
// uses in place of CPU utilization when set) or SetNamedUtilization. The
// server sets CPU and memory utilization, QPS and [InFlightMetric] itself,
// every interval.
func (s *Server) LoadRecorder() orca.ServerMetricsRecorder {
	if s.load == nil {
		return nil
	}
	return s.load.Recorder()
}

// newLoadReporter starts the load reporter cfg asks for, or returns nil.
func newLoadReporter(cfg *serverConfig) *loadreport.Reporter {
	if !cfg.loadReports {
		return nil
	}
	d := cfg.loadInterval
	if d == 0 {
		d = DefaultLoadReportInterval
	}
	return loadreport.New(d, cfg.names)
}

// orcaStreamMethod is the ORCA service's out-of-band stream, which, like
// health Watch, must end when the server stops (see endWatches).
const orcaStreamMethod = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"

// validateBalancer checks a policy given to WithLoadBalancing.
func validateBalancer(name string) error {
	if name == "" || balancer.Get(name) != nil {
		return nil
	}
	return fmt.Errorf("greeter: WithLoadBalancing(%q): no such load-balancing policy registered with grpc; want pick_first, round_robin, weighted_round_robin or %s", name, LeastRequestBalancer)
}

// withBalancer returns serviceConfig (JSON) with its loadBalancingConfig
// set to policy with default settings.
func withBalancer(serviceConfig, policy string) (string, error) {
	sc := map[string]any{}
	if serviceConfig != "" {
		if err := json.Unmarshal([]byte(serviceConfig), &sc); err != nil {
			return "", fmt.Errorf("greeter: WithLoadBalancing(%q): the service config: %w", policy, err)
		}
		if sc == nil {
			sc = map[string]any{}
		}
	}
	delete(sc, "loadBalancingPolicy") // the older form, which would conflict
	sc["loadBalancingConfig"] = []any{map[string]any{policy: map[string]any{}}}
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("greeter: WithLoadBalancing(%q): %w", policy, err)
	}
	return string(b), nil
}

// greeterResolver is greeter's own name resolver (greeter:///HOST:PORT,...
// and greeter://file/PATH), given to each client alone with
// grpc.WithResolvers: nothing is registered globally.
func greeterResolver(cfg *clientConfig) grpc.DialOption {
	return grpc.WithResolvers(&greeterresolver.Builder{Interval: cfg.addrInterval})
}

// checkGreeterTarget checks a greeter: target at construction, so that a
// mistake in its list is an error from NewClient rather than from the
// first call.
func checkGreeterTarget(target string) error {
	if !strings.HasPrefix(strings.ToLower(target), greeterresolver.Scheme+":") {
		return nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("greeter: NewClient(%q): %w", target, err)
	}
	if _, _, err := greeterresolver.Parse(u.Host, u.Path); err != nil {
		return fmt.Errorf("greeter: NewClient(%q): %w", target, err)
	}
	return nil
}

// checkScheme refuses a target whose scheme no resolver of the client
// knows: grpc would resolve the whole target as a DNS name instead, and
// fail on the first call with a puzzling error.
func checkScheme(target string, conn *grpc.ClientConn) error {
	if s, _, ok := strings.Cut(target, ":"); ok && (s == "ipv4" || s == "ipv6") {
		return fmt.Errorf("greeter: NewClient(%q): grpc-go has no %s: scheme (gRPC's C core does); list the addresses as greeter:///HOST:PORT,HOST:PORT", target, s)
	}
	i := strings.Index(target, "://")
	if i <= 0 || !strings.HasPrefix(conn.CanonicalTarget(), "dns:///"+target) || strings.EqualFold(target[:i], "dns") {
		return nil
	}
	scheme := strings.ToLower(target[:i])
	hint := "known schemes: dns, passthrough, unix, greeter (greeter:///HOST:PORT,HOST:PORT or greeter://file/PATH)"
	if scheme == "xds" {
		hint = "xds: targets need grpc's xDS client: build the client with github.com/grpc-greeter/greeter/xds, the greeter CLI with go build -tags xds"
	}
	return fmt.Errorf("greeter: NewClient(%q): no name resolver for scheme %q in this client (%s)", target, scheme, hint)
}
