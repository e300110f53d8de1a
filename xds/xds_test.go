package xds_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/grpc-greeter/greeter"
	greeterxds "github.com/grpc-greeter/greeter/xds"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcxds "google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const defaultTestTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend is a greeter on 127.0.0.1 that counts the calls it serves.
type backend struct {
	port  uint32
	calls atomic.Int64
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	srv, err := greeter.NewServer(greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.calls.Add(1)
		return h(ctx, req)
	}))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = uint32(lis.Addr().(*net.TCPAddr).Port)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return b
}

const (
	nodeID   = "greeter-test"
	listener = "greeter"
	route    = "greeter-route"
	cluster  = "greeter-cluster"
)

// snapshot is what the control plane serves: the listener greeter (what
// xds:///greeter names), its route to one cluster, round robin over the
// backends in one locality.
func snapshot(t *testing.T, version string, backends ...*backend) *cachev3.Snapshot {
	t.Helper()
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: route,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lis := &listenerv3.Listener{Name: listener, ApiListener: &listenerv3.ApiListener{ApiListener: hcm}}
	rt := &routev3.RouteConfiguration{Name: route, VirtualHosts: []*routev3.VirtualHost{{
		Name:    "greeter",
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
	cl := &clusterv3.Cluster{
		Name:                 cluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	var eps []*endpointv3.LbEndpoint
	for _, b := range backends {
		eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: b.port},
			}}},
		}}})
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		Locality:    &corev3.Locality{Region: "local"},
		LbEndpoints: eps,
		// grpc ignores a locality without a weight.
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}}}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {lis},
		resourcev3.RouteType:    {rt},
		resourcev3.ClusterType:  {cl},
		resourcev3.EndpointType: {cla},
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// controlPlane serves go-control-plane's snapshot cache over ADS on
// 127.0.0.1 and returns the cache and the bootstrap that points at it.
func controlPlane(t *testing.T) (cachev3.SnapshotCache, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	xdsServer := serverv3.NewServer(ctx, cache, nil)
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xdsServer)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		cancel()
		<-served
	})
	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q}
}`, lis.Addr().String(), nodeID)
	return cache, []byte(bootstrap)
}

// calls returns each backend's count.
func calls(bs []*backend) []int64 {
	n := make([]int64, len(bs))
	for i, b := range bs {
		n[i] = b.calls.Load()
	}
	return n
}

// An xds:///greeter client gets its listener, route, cluster and endpoints
// from go-control-plane: round robin spreads its calls over the three
// endpoints, and an EDS update that leaves one moves every call there.
func TestXDSClientFollowsControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	bs := []*backend{startBackend(t), startBackend(t), startBackend(t)}
	cache, bootstrap := controlPlane(t)
	if err := cache.SetSnapshot(ctx, nodeID, snapshot(t, "1", bs...)); err != nil {
		t.Fatal(err)
	}
	// The bootstrap for this client alone: the environment variable is
	// read once per process.
	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	c, err := greeterxds.NewClient("xds:///"+listener, greeter.WithInsecure(), greeter.WithDialOptions(grpc.WithResolvers(resolver)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for range 300 {
		if _, err := c.SayHello(ctx, "xds"); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	got := calls(bs)
	for i, n := range got {
		// round_robin starts with the endpoints already connected: the
		// first calls may go to one or two.
		if n < 80 {
			t.Errorf("backend %d served %d of 300 calls (%v); want about 100 each", i, n, got)
		}
	}

	// EDS update: only the third backend is left.
	if err := cache.SetSnapshot(ctx, nodeID, snapshot(t, "2", bs[2])); err != nil {
		t.Fatal(err)
	}
	inARow := 0
	for inARow < 50 {
		before := calls(bs)
		if _, err := c.SayHello(ctx, "xds"); err != nil {
			t.Fatalf("call after the EDS update: %v", err)
		}
		if after := calls(bs); after[2] > before[2] {
			inARow++
		} else {
			inARow = 0
		}
	}
}

// serverListener is the listener an xDS-enabled server at addr asks for:
// one filter chain whose route serves every call here.
func serverListener(t *testing.T, addr *net.TCPAddr) *listenerv3.Listener {
	t.Helper()
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "greeter-server-route",
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "greeter",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name: "grpc/server?xds.resource.listening_address=" + addr.String(),
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr.IP.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(addr.Port)},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Name:    "greeter",
			Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}},
		}},
	}
}

// An xDS-enabled greeter server serves once the control plane has sent
// the listener for its address.
func TestXDSServerServesWhenConfigured(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cache, bootstrap := controlPlane(t)
	bootstrap = []byte(strings.Replace(string(bootstrap), `"node"`, `"server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s",
  "node"`, 1))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan connectivity.ServingMode, 4)
	srv, err := greeterxds.NewServer([]grpc.ServerOption{
		grpcxds.BootstrapContentsForTesting(bootstrap),
		grpcxds.ServingModeCallback(func(_ net.Addr, a grpcxds.ServingModeChangeArgs) { serving <- a.Mode }),
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		<-served
	}()
	res, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {serverListener(t, lis.Addr().(*net.TCPAddr))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SetSnapshot(ctx, nodeID, res); err != nil {
		t.Fatal(err)
	}
	select {
	case mode := <-serving:
		if mode != connectivity.ServingModeServing {
			t.Fatalf("serving mode = %v; want serving once the listener came", mode)
		}
	case <-ctx.Done():
		t.Fatal("the server never said it serves")
	}
	c, err := greeter.NewClient(lis.Addr().String(), greeter.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if msg, err := c.SayHello(ctx, "xds server", grpc.WaitForReady(true)); err != nil || msg != "Hello, xds server!" {
		t.Fatalf("SayHello = %q, %v", msg, err)
	}
	// Health per service name, as greeter.Server answers it.
	hc := healthpb.NewHealthClient(c.Conn())
	for _, svc := range []string{"", greeter.ServiceName, greeter.HelloworldServiceName} {
		if resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
}
