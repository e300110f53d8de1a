// Package xds runs greeter under an xDS control plane (Istio, Traffic
// Director, or one built with go-control-plane): clients for xds:///NAME
// targets, whose listeners, routes, clusters and endpoints the control
// plane serves and updates, and servers whose listeners it configures.
//
// It is a package of its own because grpc-go's xDS support is large (it
// makes the greeter CLI 13 MB bigger, and its build much longer): programs
// that do not import this package do not link it.
//
// grpc-go reads its xDS bootstrap, which names the control plane and this
// node, from the file in GRPC_XDS_BOOTSTRAP or the JSON in
// GRPC_XDS_BOOTSTRAP_CONFIG, once, when the process first needs it: set
// the variable before the program starts.
//
// Importing the package registers grpc's xds: resolver, its balancers and
// its credentials with grpc's global registries, as importing
// google.golang.org/grpc/xds does.
package xds

import (
	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcxds "google.golang.org/grpc/xds"
)

// NewClient builds a greeter client for target, typically xds:///NAME, the
// name of a listener the control plane serves. It is [greeter.NewClient]
// with grpc's xDS resolver linked in; the options are the same. The
// control plane's configuration (load balancing, retries, timeouts)
// takes precedence over the client's default service config.
func NewClient(target string, opts ...greeter.ClientOption) (*greeter.Client, error) {
	return greeter.NewClient(target, opts...)
}

// Server is a greeter served by a grpc xDS-enabled server: it serves only
// once the control plane has sent the listener for its address, with the
// filter chains, security and routes it says.
type Server struct {
	*grpcxds.GRPCServer
	health *health.Server
}

// NewServer builds an xDS-enabled server (grpc's xds.NewGRPCServer, with
// grpcOpts) serving the Greeter (with the service options opts, as
// [greeter.Register] takes them) and the health service, SERVING for the
// whole server and for each of the Greeter's service names.
// Whole-server options of greeter (interceptors, keepalive) do not apply,
// and its security options are refused: give grpc server options in
// grpcOpts instead (xDS credentials, grpc-go's authz interceptors).
func NewServer(grpcOpts []grpc.ServerOption, opts ...greeter.ServerOption) (*Server, error) {
	gs, err := grpcxds.NewGRPCServer(grpcOpts...)
	if err != nil {
		return nil, err
	}
	if err := greeter.Register(gs, opts...); err != nil {
		gs.Stop()
		return nil, err
	}
	hs := health.NewServer()
	for name := range gs.GetServiceInfo() { // the Greeter's names, as greeter.Server's health has them
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	return &Server{GRPCServer: gs, health: hs}, nil
}

// Health returns the server's health service.
func (s *Server) Health() *health.Server { return s.health }
