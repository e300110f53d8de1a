package greeter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-greeter/greeter/internal/compress"
	"github.com/grpc-greeter/greeter/internal/guard"
	"github.com/grpc-greeter/greeter/internal/loadreport"
	"github.com/grpc-greeter/greeter/internal/observe"
	"github.com/grpc-greeter/greeter/internal/requestid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
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

// Server serves the Greeter service, the standard health service and, unless
// turned off, server reflection. Build one with [NewServer], run it with
// [Server.Serve] and stop it with [Server.Shutdown].
type Server struct {
	grpc       *grpc.Server
	health     *health.Server
	guard      *guard.Guard         // nil without deadline options
	load       *loadreport.Reporter // nil without WithLoadReports
	drainDelay time.Duration
	// watching ends when Shutdown's final stop begins, and with it the
	// health Watch streams.
	watching    context.Context
	stopWatches context.CancelFunc
	// closers stop the file watchers of the security options and the
	// load reporter.
	closers []func()
}

// NewServer builds a Server from opts. It validates them and does no network
// I/O; the error says which option is wrong. It starts 16 x GOMAXPROCS idle
// stream-worker goroutines, which [Server.Shutdown] stops: shut down every
// Server built.
func NewServer(opts ...ServerOption) (*Server, error) {
	cfg, err := newServerConfig(opts)
	if err != nil {
		return nil, err
	}
	svc := newService(cfg)
	s := &Server{health: health.NewServer(), guard: svc.guard, drainDelay: cfg.drainDelay, load: newLoadReporter(cfg)}
	// The server's own lifetime, not a caller's: no caller's context to
	// derive it from.
	s.watching, s.stopWatches = context.WithCancel(context.Background())
	sec, err := newServerSecurity(cfg)
	if err != nil {
		s.stopWatches()
		if s.load != nil {
			s.load.Stop()
		}
		return nil, err
	}
	s.closers = sec.closers
	if s.load != nil {
		s.closers = append(s.closers, s.load.Stop)
	}
	if s.grpc, err = newGRPCServer(serverOptions(cfg, svc, sec, s.load, s.watching)); err != nil {
		s.stopWatches()
		s.close()
		return nil, err
	}
	if err := svc.register(s.grpc); err != nil { // unreachable: the server is new
		s.grpc.Stop()
		s.stopWatches()
		s.close()
		return nil, err
	}
	if s.load != nil {
		if err := s.load.Register(s.grpc); err != nil { // unreachable: the recorder is set
			s.grpc.Stop()
			s.stopWatches()
			s.close()
			return nil, err
		}
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	for _, name := range append([]string{""}, cfg.names...) {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	if cfg.reflection {
		registerReflection(s.grpc)
	}
	return s, nil
}

// newGRPCServer is grpc.NewServer, with the one conflict among raw options
// that grpc refuses by panicking (a second tap handle) turned into an
// error.
func newGRPCServer(opts []grpc.ServerOption) (s *grpc.Server, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("greeter: WithGRPCServerOptions: grpc refused the options (%v); a grpc.InTapHandle cannot be combined with a deadline policy's Default or Max, which greeter applies with its own", p)
		}
	}()
	return grpc.NewServer(opts...), nil
}

// serverOptions are the grpc server options cfg asks for, the importer's
// raw ones last so that they win.
func serverOptions(cfg *serverConfig, svc *service, sec serverSecurityParts, load *loadreport.Reporter, watching context.Context) []grpc.ServerOption {
	var opts []grpc.ServerOption
	if svc.guard != nil && cfg.policyBounds() {
		// The deadline policy from the moment a stream opens.
		opts = append(opts, grpc.InTapHandle(svc.guard.InTapHandle()))
	}
	if sec.creds != nil {
		opts = append(opts, grpc.Creds(sec.creds))
	}
	// Metrics and traces come from grpc-go's OpenTelemetry stats handlers,
	// outside the interceptor chain (their own interceptor goes first).
	opts = append(opts, cfg.serverTelemetry()...)
	// The interceptor order, outermost first; docs/observability.md has
	// the same list, and TestInterceptorOrder checks it end to end:
	//
	//  1. recovery: a panic in any interceptor or handler is caught;
	//     then, with tokens only, the slot the token check (5) fills with
	//     the caller's identity, so that the log line has it;
	//  2. compression: before request ids, whose context grpc's
	//     SetSendCompressor does not accept;
	//  3. request ids: every interceptor after it sees the id;
	//  4. logging: the one line per call, with its request id and, filled
	//     in by the deadline guard, its budget and source;
	//  5. security (security.go): tokens, then authorization, then the
	//     rate limit;
	//  6. load reports (WithLoadReports): the greetings in flight, counted
	//     once a call is let in;
	//  7. the importer's own (WithUnaryServerInterceptor);
	//  8. the service's own policies, bound to its methods: the deadline
	//     guard (greeter_* deadline instruments), then fault injection.
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if cfg.recovery {
		unary = append(unary, recovery.UnaryServerInterceptor(recoveryOption(cfg.logger)))
		stream = append(stream, recovery.StreamServerInterceptor(recoveryOption(cfg.logger)))
	}
	// With tokens, a slot for the caller's identity that the token check
	// fills, for every interceptor from here on (security.go).
	unary = append(unary, sec.firstUnary...)
	stream = append(stream, sec.firstStream...)
	if cfg.compressor != "" {
		// Before request ids, whose context grpc's SetSendCompressor
		// does not accept.
		unary = append(unary, compress.UnaryServerInterceptor(cfg.compressor))
		stream = append(stream, compress.StreamServerInterceptor(cfg.compressor))
	}
	if cfg.requestID {
		ids := requestid.New()
		unary = append(unary, ids.UnaryServerInterceptor())
		stream = append(stream, ids.StreamServerInterceptor())
	}
	if oc := cfg.observeConfig(); oc.Enabled() {
		unary = append(unary, observe.UnaryServerInterceptor(oc))
		stream = append(stream, observe.StreamServerInterceptor(oc))
	}
	// Security: tokens, then authorization, then the rate limit
	// (security.go).
	unary = append(unary, sec.unary...)
	stream = append(stream, sec.stream...)
	if load != nil {
		// Counts the greetings in flight and served, for the reports
		// that grpc's orca interceptors, outermost, put in each call's
		// trailer.
		unary = append(unary, load.UnaryServerInterceptor())
		stream = append(stream, load.StreamServerInterceptor())
		opts = append(opts, load.ServerOptions()...)
	}
	stream = append(stream, endWatches(watching))
	opts = append(opts,
		grpc.ChainUnaryInterceptor(append(unary, cfg.unary...)...),
		grpc.ChainStreamInterceptor(append(stream, cfg.stream...)...),
		grpc.KeepaliveParams(cfg.keepalive),
		grpc.KeepaliveEnforcementPolicy(cfg.enforcement),
		grpc.NumStreamWorkers(serverWorkers()),
		grpc.MaxConcurrentStreams(cfg.maxStreams),
		grpc.MaxHeaderListSize(cfg.maxHeaders),
		// grpc's proto codec, for every call whatever its content-subtype
		// (greeter serves proto only), with a name that is not UTF-8
		// left to name validation's InvalidArgument.
		grpc.ForceServerCodecV2(requestCodec{encoding.GetCodecV2(proto.Name)}),
	)
	if cfg.window.set {
		opts = append(opts, grpc.InitialWindowSize(cfg.window.n))
	}
	if cfg.connWindow.set {
		opts = append(opts, grpc.InitialConnWindowSize(cfg.connWindow.n))
	}
	return append(opts, cfg.grpcOpts...)
}

// Register registers the Greeter service on r, for programs that run their
// own grpc.Server: under both [ServiceName] and [HelloworldServiceName], or
// the names [WithServiceNames] picks. The service's own options apply (the
// handler, deadlines, fault injection, simulated work); options that belong
// to a whole server (interceptors, raw grpc options, reflection,
// keepalive, recovery, request ids) are still validated but have no effect
// here. The security options are refused rather than ignored, so that a
// service is never left open by mistake: give r's own grpc.Server its
// credentials (grpc.Creds) and interceptors (grpc-go's authz package) instead.
// When r is a *grpc.Server (or has its GetServiceInfo method),
// Register checks first that no name is taken and returns an error naming
// the one that is, registering nothing; r must not be serving yet.
func Register(r grpc.ServiceRegistrar, opts ...ServerOption) error {
	cfg, err := newServerConfig(opts)
	if err != nil {
		return err
	}
	if err := cfg.sec.refuseInRegister(cfg); err != nil {
		return err
	}
	return newService(cfg).register(r)
}

// Serve accepts connections on lis and serves them until [Server.Shutdown].
// It returns nil after a shutdown and the listener's error otherwise.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown stops the server gracefully. Health turns NOT_SERVING at once;
// with [WithDrainDelay] the server goes on accepting and serving for the
// delay, so that load balancers and readiness probes that watch health move
// traffic away before connections are refused. Then health Watch streams
// end, listeners close, new calls are refused and in-flight calls run to
// completion. If ctx ends first, the remaining calls are cancelled and
// Shutdown returns ctx's error once they have returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown()
	if s.drainDelay > 0 {
		// Still accepting and serving: load balancers and readiness
		// probes see NOT_SERVING and move traffic away first.
		t := time.NewTimer(s.drainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	s.stopWatches() // they would pin GracefulStop until ctx ends
	defer s.close()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	if s.guard != nil {
		defer s.guard.Stop()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		if s.guard != nil {
			s.guard.ReportStuck()
		}
		s.grpc.Stop()
		<-done
		return ctx.Err()
	}
}

// close stops the security options' file watchers and the load reporter.
func (s *Server) close() {
	for _, f := range s.closers {
		f()
	}
	s.closers = nil
}

// GRPCServer returns the underlying grpc.Server, to register more services on
// it before [Server.Serve].
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// Overruns returns how many handlers have kept running longer than the
// overrun grace after their context ended; always 0 without the deadline
// guard (see [WithOverrunGrace]).
func (s *Server) Overruns() int64 {
	if s.guard == nil {
		return 0
	}
	return s.guard.Overruns()
}

// Health returns the server's health service, to change the serving status
// of a service by name ("" for the whole server).
func (s *Server) Health() *health.Server { return s.health }

// endWatches ends health Watch streams (and ORCA's out-of-band load report
// streams) when watching ends: a load balancer watching a server that is
// stopping gets the end of its stream and reconnects elsewhere, and the
// stream does not hold the stop up.
func endWatches(watching context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod != healthpb.Health_Watch_FullMethodName && info.FullMethod != orcaStreamMethod {
			return h(srv, ss)
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(watching, cancel)
		defer stop()
		return h(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
	}
}
