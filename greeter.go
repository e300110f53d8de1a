package greeter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ServiceName is the full name of the Greeter service as the classic
// package-less helloworld.proto declares it: methods are /Greeter/SayHello and
// so on.
const ServiceName = "Greeter"

// HelloworldServiceName is the full name upstream gRPC's helloworld examples
// use (proto package helloworld). A [Server] answers under both names.
const HelloworldServiceName = "helloworld.Greeter"

type serverConfig struct {
	logger        *slog.Logger
	tls           *tls.Config
	tlsSet        bool
	unary         []grpc.UnaryServerInterceptor
	stream        []grpc.StreamServerInterceptor
	grpcOpts      []grpc.ServerOption
	reflection    bool
	streamReplies int
	res           serverResilience
	deadline      serverDeadlines
	guard         *guard // built by register when deadline.on
}

func newServerConfig(opts []ServerOption) (*serverConfig, error) {
	c := &serverConfig{
		logger:        slog.New(slog.DiscardHandler),
		reflection:    true,
		streamReplies: DefaultStreamReplies,
	}
	for _, o := range opts {
		o.applyServer(c)
	}
	return c, c.validate()
}

func (c *serverConfig) validate() error {
	if c.logger == nil {
		return errors.New("greeter: WithLogger: nil logger")
	}
	if c.tlsSet && c.tls == nil {
		return errors.New("greeter: WithTLS: nil *tls.Config")
	}
	if c.streamReplies < 1 {
		return fmt.Errorf("greeter: WithStreamReplies(%d): must be at least 1", c.streamReplies)
	}
	if err := c.res.validate(); err != nil {
		return err
	}
	return c.deadline.validate()
}

// Server serves the Greeter service, the standard health service and, unless
// turned off, server reflection. Build one with [NewServer], run it with
// [Server.Serve] and stop it with [Server.Shutdown].
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	guard  *guard // nil without deadline options
}

// NewServer builds a Server from opts. It validates them and does no network
// I/O; the error says which option is wrong. It starts 16 x GOMAXPROCS idle
// stream-worker goroutines (a tuned default, see tuning.go), which
// [Server.Shutdown] stops: shut down every Server built.
func NewServer(opts ...ServerOption) (*Server, error) {
	cfg, err := newServerConfig(opts)
	if err != nil {
		return nil, err
	}
	var gopts []grpc.ServerOption
	if cfg.tls != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(cfg.tls)))
	}
	gopts = append(gopts,
		grpc.ChainUnaryInterceptor(serverUnaryInterceptors(cfg)...),
		grpc.ChainStreamInterceptor(serverStreamInterceptors(cfg)...),
	)
	gopts = append(gopts, serverTransportOptions(cfg)...)
	gopts = append(gopts, tunedServerOptions()...)
	gopts = append(gopts, cfg.grpcOpts...)

	s := &Server{grpc: grpc.NewServer(gopts...), health: health.NewServer()}
	register(s.grpc, cfg)
	s.guard = cfg.guard
	healthpb.RegisterHealthServer(s.grpc, s.health)
	for _, name := range []string{"", ServiceName, HelloworldServiceName} {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	if cfg.reflection {
		registerReflection(s.grpc)
	}
	return s, nil
}

// Register registers the Greeter service on r, under both [ServiceName] and
// [HelloworldServiceName], for programs that run their own grpc.Server.
// Options that belong to a whole server (TLS, interceptors, raw grpc options,
// reflection, keepalive) are still validated but have no effect here.
func Register(r grpc.ServiceRegistrar, opts ...ServerOption) error {
	cfg, err := newServerConfig(opts)
	if err != nil {
		return err
	}
	register(r, cfg)
	return nil
}

// Serve accepts connections on lis and serves them until [Server.Shutdown].
// It returns nil after a shutdown and the listener's error otherwise.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown stops the server gracefully: health turns NOT_SERVING, listeners
// close, new calls are refused and in-flight calls run to completion. If ctx
// ends first, the remaining calls are cancelled and Shutdown returns ctx's
// error once they have returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	defer s.guard.stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.guard.reportStuck()
		s.grpc.Stop()
		<-done
		return ctx.Err()
	}
}

// GRPCServer returns the underlying grpc.Server, to register more services on
// it before [Server.Serve].
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// Health returns the server's health service, to change the serving status
// of a service by name ("" for the whole server).
func (s *Server) Health() *health.Server { return s.health }
