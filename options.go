package greeter

import (
	"crypto/tls"
	"log/slog"
	"time"

	"google.golang.org/grpc"
)

// ServerOption configures a [Server] built by [NewServer], or the service
// registered by [Register].
type ServerOption interface {
	applyServer(*serverConfig)
}

// ClientOption configures a [Client] built by [NewClient].
type ClientOption interface {
	applyClient(*clientConfig)
}

// Option configures a [Server] and a [Client] alike. Only options whose
// meaning is the same on both sides are Options.
type Option interface {
	ServerOption
	ClientOption
}

type serverOptionFunc func(*serverConfig)

func (f serverOptionFunc) applyServer(c *serverConfig) { f(c) }

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyClient(c *clientConfig) { f(c) }

type option struct {
	server func(*serverConfig)
	client func(*clientConfig)
}

func (o option) applyServer(c *serverConfig) { o.server(c) }
func (o option) applyClient(c *clientConfig) { o.client(c) }

// WithLogger sets the logger for the server's diagnostics: deadline events,
// handlers that outlive their calls, recovered panics, relay failures. The
// default discards everything: the library never logs on its own. A
// [Client] has no such option: it returns its errors instead of logging
// them.
func WithLogger(l *slog.Logger) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.logger = l })
}

// WithTLS secures the connection with TLS using cfg: the server presents
// cfg.Certificates, the client verifies the server against cfg.RootCAs (or
// the system roots when nil). A nil cfg is an error at construction.
//
// By default a [Server] serves plaintext and a [Client] refuses to dial until
// it is given WithTLS, [WithInsecure] or transport credentials through
// [WithDialOptions].
func WithTLS(cfg *tls.Config) Option {
	return option{
		server: func(c *serverConfig) { c.tls, c.tlsSet = cfg, true },
		client: func(c *clientConfig) { c.tls, c.tlsSet = cfg, true },
	}
}

// WithInsecure makes the client speak plaintext HTTP/2, with no transport
// security: for local development, tests and loopback only. It must be asked
// for explicitly; see [WithTLS].
func WithInsecure() ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.insecure = true })
}

// DefaultTimeout is the deadline a [Client] gives a unary call whose context
// has none, and the idle timeout it gives such a stream, unless changed with
// [WithDefaultTimeout].
const DefaultTimeout = 10 * time.Second

// WithDefaultTimeout sets the deadline given to a unary call whose context has
// no deadline; the default is [DefaultTimeout]. A deadline the caller set is
// never lengthened nor shortened by it. A stream whose context has no
// deadline gets d as its idle timeout instead: it ends after d without a
// message ([WithStreamIdleTimeout] sets that apart). A d of zero or less opts
// out: calls whose context has no deadline then run without one.
func WithDefaultTimeout(d time.Duration) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.timeout = d })
}

// WithUnaryClientInterceptor appends interceptors that run around every unary
// call, in the order given, the first outermost. Repeated uses append.
func WithUnaryClientInterceptor(i ...grpc.UnaryClientInterceptor) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.unary = append(c.unary, i...) })
}

// WithStreamClientInterceptor appends interceptors that run around every
// streaming call, in the order given, the first outermost. Repeated uses
// append.
func WithStreamClientInterceptor(i ...grpc.StreamClientInterceptor) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.stream = append(c.stream, i...) })
}

// WithUnaryServerInterceptor appends interceptors that run around every
// unary handler of the server, in the order given, the first outermost.
// Repeated uses append. [Register] ignores it: the registrar's own server
// owns its interceptors.
func WithUnaryServerInterceptor(i ...grpc.UnaryServerInterceptor) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.unary = append(c.unary, i...) })
}

// WithStreamServerInterceptor appends interceptors that run around every
// streaming handler of the server, in the order given, the first outermost.
// Repeated uses append. [Register] ignores it.
func WithStreamServerInterceptor(i ...grpc.StreamServerInterceptor) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.stream = append(c.stream, i...) })
}

// WithDialOptions passes raw grpc dial options to [grpc.NewClient], after
// greeter's own, so that they win where the two disagree. Repeated uses
// append.
func WithDialOptions(o ...grpc.DialOption) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.dialOpts = append(c.dialOpts, o...) })
}

// WithGRPCServerOptions passes raw grpc server options to [grpc.NewServer],
// after greeter's own, so that they win where the two disagree. Repeated uses
// append. [Register] ignores it.
func WithGRPCServerOptions(o ...grpc.ServerOption) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.grpcOpts = append(c.grpcOpts, o...) })
}

// WithServiceName sets the service name the client calls: [ServiceName]
// ("Greeter", the default) or [HelloworldServiceName] ("helloworld.Greeter",
// for servers built from upstream gRPC's helloworld examples).
func WithServiceName(name string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.service = name })
}

// WithoutReflection turns off the server reflection service, which
// [NewServer] registers by default so that tools such as grpcurl can list and
// describe the service. [Register] ignores it.
func WithoutReflection() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.reflection = false })
}

// DefaultStreamReplies is how many greetings SayHelloStreamReply sends unless
// changed with [WithStreamReplies].
const DefaultStreamReplies = 3

// WithStreamReplies sets how many greetings SayHelloStreamReply sends for
// one request; the default is [DefaultStreamReplies]. It must be at least 1.
func WithStreamReplies(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.streamReplies = n })
}

// WithServiceConfig sets the client's default gRPC service config, in grpc's
// JSON form (per-method timeouts, retry policy, load balancing, health
// checking): see https://github.com/grpc/grpc/blob/master/doc/service_config.md.
// A config the name resolver supplies takes precedence. An invalid config
// makes [NewClient] fail with grpc's description of what is wrong. The
// default is [DefaultServiceConfig] (retries on UNAVAILABLE, throttled);
// json replaces it whole, and "" applies none.
func WithServiceConfig(json string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.serviceConfig = json })
}
