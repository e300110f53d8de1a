package greeter

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/hedge"
	"github.com/grpc-greeter/greeter/internal/observe"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Client calls the Greeter service over one shared connection. It is safe
// for concurrent use; build it once with [NewClient] and [Client.Close] it
// when done.
type Client struct {
	conn    *grpc.ClientConn
	timeout time.Duration
	// What a ConnectionError says: the target, the address it makes grpc
	// dial, plaintext or not.
	target, addr string
	insecure     bool
	// The deadline rules of the call path (call.go).
	perAttempt    time.Duration
	maxAttempts   int
	streamIdle    time.Duration
	streamIdleSet bool
	// grpcRetries: grpc's service-config retries are on (greeter's own
	// attempts and hedging turn them off).
	grpcRetries bool
	// What the client's signals need (observability.go): its deadline
	// instruments (nil without a MeterProvider), and whether a call's
	// budget source goes onto its context for the log line and span.
	metrics  *observe.ClientMetrics
	observed bool
	// Full method names, computed once for the configured service name.
	sayHello, sayHelloAgain, streamReply, bidi string
	// closers stop the file watchers of WithTLSFiles.
	closers []func()
}

// NewClient builds a Client for target, a gRPC target such as
// "localhost:50051", "dns:///greeter.example.com:443",
// "unix:/run/greeter.sock", or one of greeter's own: a list,
// "greeter:///10.0.0.1:50051,10.0.0.2:50051", or a file of addresses, one
// host:port a line, watched for changes, "greeter://file/etc/greeter/backends"
// (see [WithAddressFileInterval]). [WithLoadBalancing] chooses how calls
// spread over the addresses. Like [grpc.NewClient] it does no network I/O:
// the connection is made on the first call. It fails when an option is
// invalid, when no transport security was chosen ([WithTLS],
// [WithTLSFiles], [WithInsecure], or credentials through [WithDialOptions]),
// when a host target has no port, which grpc would quietly dial at 443,
// when a greeter: target is malformed, and when no resolver of the client
// knows the target's scheme (xds:/// needs package greeter/xds).
func NewClient(target string, opts ...ClientOption) (*Client, error) {
	cfg, err := newClientConfig(opts)
	if err != nil {
		return nil, err
	}
	addr, noPort := targetAddr(target)
	if noPort {
		return nil, fmt.Errorf("greeter: NewClient(%q): the target has no port, so grpc would dial %s: add the server's port, as in %q", target, addr, strings.TrimSuffix(addr, "443")+"50051")
	}
	if err := checkGreeterTarget(target); err != nil {
		return nil, err
	}
	serviceConfig := cfg.serviceConfig
	if cfg.balancer != "" {
		if serviceConfig, err = withBalancer(serviceConfig, cfg.balancer); err != nil {
			return nil, err
		}
	}
	creds, secOpts, closers, err := cfg.sec.build()
	if err != nil {
		return nil, err
	}
	var dopts []grpc.DialOption
	switch {
	case creds != nil:
		dopts = append(dopts, grpc.WithTransportCredentials(tlsCredentials{creds}))
	case cfg.tls != nil:
		dopts = append(dopts, grpc.WithTransportCredentials(tlsCredentials{newClientCredentials(cfg.tls)}))
	case cfg.insecure:
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	// grpc-go's OpenTelemetry instrumentation first: its call span is
	// there when greeter's log line and budget attributes are written.
	dopts = append(dopts, cfg.clientTelemetry()...)
	// The importer's interceptors, and greeter's own, let the connection
	// probe (connection.go) through untouched. The log line is outermost.
	unary := make([]grpc.UnaryClientInterceptor, 0, len(cfg.unary)+2)
	stream := make([]grpc.StreamClientInterceptor, 0, len(cfg.stream)+1)
	if oc := cfg.observeConfig(); oc.Logger != nil || oc.Trace {
		unary = append(unary, skipProbe(observe.UnaryClientInterceptor(oc)))
		stream = append(stream, observe.StreamClientInterceptor(oc))
	}
	stream = append(stream, cfg.stream...)
	for _, i := range cfg.unary {
		unary = append(unary, skipProbe(i))
	}
	if h := cfg.hedging; h != nil {
		// Innermost, after the caller's interceptors, so that those see
		// one logical call however many attempts hedging makes, as they
		// do with grpc's own retries.
		unary = append(unary, skipProbe(hedge.UnaryClientInterceptor(hedge.Policy{
			MaxAttempts: min(h.MaxAttempts, maxHedgedAttempts),
			Delay:       h.HedgingDelay,
			NonFatal:    h.NonFatalStatusCodes,
		})))
	}
	dopts = append(dopts,
		grpc.WithChainUnaryInterceptor(unary...),
		grpc.WithChainStreamInterceptor(stream...),
	)
	if serviceConfig != "" {
		dopts = append(dopts, grpc.WithDefaultServiceConfig(serviceConfig))
	}
	dopts = append(dopts, greeterResolver(cfg)) // greeter:/// targets, for this client alone
	grpcRetries := !cfg.perAttemptSet && cfg.hedging == nil
	if !grpcRetries {
		// greeter's own attempts take the place of grpc's retries: see
		// WithPerAttemptTimeout and WithHedging.
		dopts = append(dopts, grpc.WithDisableRetry())
	}
	if k := cfg.keepalive; k != nil {
		dopts = append(dopts, grpc.WithKeepaliveParams(*k))
	}
	if cfg.window.set {
		dopts = append(dopts, grpc.WithInitialWindowSize(cfg.window.n))
	}
	if cfg.connWindow.set {
		dopts = append(dopts, grpc.WithInitialConnWindowSize(cfg.connWindow.n))
	}
	if cfg.compressor != "" {
		dopts = append(dopts, grpc.WithDefaultCallOptions(grpc.UseCompressor(cfg.compressor)))
	}
	dopts = append(dopts, secOpts...)
	dopts = append(dopts, cfg.dialOpts...)
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		for _, f := range closers {
			f()
		}
		if creds == nil && cfg.tls == nil && !cfg.insecure {
			return nil, fmt.Errorf("greeter: NewClient(%q): %w (choose transport security with WithTLS or WithInsecure)", target, err)
		}
		return nil, fmt.Errorf("greeter: NewClient(%q): %w", target, err)
	}
	if err := checkScheme(target, conn); err != nil {
		conn.Close()
		for _, f := range closers {
			f()
		}
		return nil, err
	}
	prefix := "/" + cfg.service + "/"
	return &Client{
		conn:          conn,
		target:        target,
		addr:          addr,
		insecure:      cfg.insecure,
		timeout:       cfg.timeout,
		perAttempt:    cfg.perAttempt,
		maxAttempts:   cfg.maxAttempts,
		streamIdle:    cfg.streamIdle,
		streamIdleSet: cfg.streamIdleSet,
		grpcRetries:   grpcRetries,
		metrics:       cfg.metrics,
		observed:      cfg.logger != nil || cfg.telemetry.tracing,
		sayHello:      prefix + "SayHello",
		sayHelloAgain: prefix + "SayHelloAgain",
		streamReply:   prefix + "SayHelloStreamReply",
		bidi:          prefix + "SayHelloBidiStream",
		closers:       closers,
	}, nil
}

// SayHello greets name and returns the server's reply, "Hello, NAME!" from
// a greeter server. Errors carry a gRPC status: status.Code(err) tells
// DeadlineExceeded when the deadline passed, Canceled when ctx was
// cancelled, Unavailable when no server could be reached (a
// [*ConnectionError] that says why: connection refused, a TLS handshake
// failure, ...), and the server's own code otherwise: InvalidArgument for
// an empty name or one longer than [MaxNameLength]. DeadlineExceeded and
// Canceled come as a [*DeadlineError] that explains which budget ran out
// and where. docs/errors.md lists every code.
func (c *Client) SayHello(ctx context.Context, name string, opts ...grpc.CallOption) (string, error) {
	return c.unary(ctx, c.sayHello, name, opts)
}

// SayHelloAgain greets name once more: "Hello again, NAME!" from a greeter
// server. Servers built from the classic tutorial proto without this method
// answer Unimplemented. Errors are as for [Client.SayHello].
func (c *Client) SayHelloAgain(ctx context.Context, name string, opts ...grpc.CallOption) (string, error) {
	return c.unary(ctx, c.sayHelloAgain, name, opts)
}

func (c *Client) unary(ctx context.Context, method, name string, opts []grpc.CallOption) (string, error) {
	reply := new(greeterpb.HelloReply)
	if err := c.invoke(ctx, method, &greeterpb.HelloRequest{Name: name}, reply, opts); err != nil {
		return "", explainUnimplemented(err, method)
	}
	return reply.GetMessage(), nil
}

// SayHelloStreamReply asks for several greetings of name and returns the
// stream they arrive on: call Recv until it returns io.EOF. The stream lives
// as long as ctx; cancel ctx to abandon it.
func (c *Client) SayHelloStreamReply(ctx context.Context, name string, opts ...grpc.CallOption) (grpc.ServerStreamingClient[greeterpb.HelloReply], error) {
	desc := &grpc.StreamDesc{StreamName: "SayHelloStreamReply", ServerStreams: true}
	s, err := c.newStream(ctx, desc, c.streamReply, opts)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(&greeterpb.HelloRequest{Name: name}); err != nil {
		if err == io.EOF {
			// The stream ended before the request went out: its
			// status, which RecvMsg returns, says why.
			if rerr := s.RecvMsg(new(greeterpb.HelloReply)); rerr != nil && rerr != io.EOF {
				err = rerr
			}
		}
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return s, nil
}

// SayHelloBidiStream opens a stream on which each request sent is answered
// by one greeting. Call CloseSend when done sending, then Recv until io.EOF.
// The stream lives as long as ctx; cancel ctx to abandon it.
func (c *Client) SayHelloBidiStream(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[greeterpb.HelloRequest, greeterpb.HelloReply], error) {
	desc := &grpc.StreamDesc{StreamName: "SayHelloBidiStream", ServerStreams: true, ClientStreams: true}
	return c.newStream(ctx, desc, c.bidi, opts)
}

// Conn returns the client's connection, to call other services on the same
// server or to watch its state.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection. Calls in flight fail with Canceled.
func (c *Client) Close() error {
	err := c.conn.Close()
	for _, f := range c.closers {
		f()
	}
	c.closers = nil
	return err
}

// skipProbe runs i around every call but the connection probe.
func skipProbe(i grpc.UnaryClientInterceptor) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == probeMethod {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		return i(ctx, method, req, reply, cc, invoker, opts...)
	}
}
