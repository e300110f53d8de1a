package greeter

import (
	"errors"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// serverResilience holds the server settings of the resilience options
// (keepalive, flow control, compression, fault injection, request ids,
// recovery). Its zero value means "greeter's defaults".
type serverResilience struct {
	keepalive   *keepalive.ServerParameters
	enforcement *keepalive.EnforcementPolicy
	window      int32
	connWindow  int32
	compressor  string
	failFirst   int
	noRecovery  bool
	errs        []error
	requestIDs  *requestIDs // nil unless WithRequestID
}

func (r *serverResilience) validate() error { return errors.Join(r.errs...) }

// serverInterceptors lists greeter's own server-level interceptors, which
// run outside the ones given with WithUnaryServerInterceptor: recovery
// first, so that a panic in any interceptor is caught, then request ids, so
// that every interceptor after it sees the id.
func serverUnaryInterceptors(cfg *serverConfig) []grpc.UnaryServerInterceptor {
	var is []grpc.UnaryServerInterceptor
	if !cfg.res.noRecovery {
		is = append(is, recoveryUnary(cfg))
	}
	if cfg.res.requestIDs != nil {
		is = append(is, cfg.res.requestIDs.unary)
	}
	if cfg.res.compressor != "" {
		is = append(is, sendCompressorUnary(cfg.res.compressor))
	}
	return slices.Concat(is, cfg.unary)
}

func serverStreamInterceptors(cfg *serverConfig) []grpc.StreamServerInterceptor {
	var is []grpc.StreamServerInterceptor
	if !cfg.res.noRecovery {
		is = append(is, recoveryStream(cfg))
	}
	if cfg.res.requestIDs != nil {
		is = append(is, cfg.res.requestIDs.stream)
	}
	if cfg.res.compressor != "" {
		is = append(is, sendCompressorStream(cfg.res.compressor))
	}
	return slices.Concat(is, cfg.stream)
}

// serverTransportOptions turns the keepalive and flow-control settings into
// grpc server options.
func serverTransportOptions(cfg *serverConfig) []grpc.ServerOption {
	kp, ep := DefaultServerKeepalive(), DefaultKeepaliveEnforcement()
	if cfg.res.keepalive != nil {
		kp = *cfg.res.keepalive
	}
	if cfg.res.enforcement != nil {
		ep = *cfg.res.enforcement
	}
	opts := []grpc.ServerOption{grpc.KeepaliveParams(kp), grpc.KeepaliveEnforcementPolicy(ep)}
	if cfg.res.window > 0 {
		opts = append(opts, grpc.InitialWindowSize(cfg.res.window))
	}
	if cfg.res.connWindow > 0 {
		opts = append(opts, grpc.InitialConnWindowSize(cfg.res.connWindow))
	}
	return opts
}

// clientResilience is serverResilience's counterpart for a Client.
type clientResilience struct {
	keepalive  *keepalive.ClientParameters
	window     int32
	connWindow int32
	compressor string
	hedging    *HedgingPolicy
	errs       []error
}

// clientUnaryInterceptors appends greeter's own client interceptors after
// the caller's, so that the caller's see one logical call however many
// attempts hedging makes, as they do with grpc's own retries.
func clientUnaryInterceptors(cfg *clientConfig) []grpc.UnaryClientInterceptor {
	if cfg.res.hedging == nil {
		return cfg.unary
	}
	return slices.Concat(cfg.unary, []grpc.UnaryClientInterceptor{hedgingInterceptor(*cfg.res.hedging)})
}

// clientTransportOptions turns the keepalive, flow-control and compression
// settings into dial options.
func clientTransportOptions(cfg *clientConfig) []grpc.DialOption {
	var opts []grpc.DialOption
	if cfg.res.keepalive != nil {
		opts = append(opts, grpc.WithKeepaliveParams(*cfg.res.keepalive))
	}
	if cfg.res.window > 0 {
		opts = append(opts, grpc.WithInitialWindowSize(cfg.res.window))
	}
	if cfg.res.connWindow > 0 {
		opts = append(opts, grpc.WithInitialConnWindowSize(cfg.res.connWindow))
	}
	if cfg.res.compressor != "" {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.UseCompressor(cfg.res.compressor)))
	}
	return opts
}
