package greeter

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/observe"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
)

// Every option of both sides is in this file. Each is a setter: a
// config starts from greeter's defaults (newServerConfig,
// newClientConfig), the options are applied in order, and validate checks
// the result, naming the option that is wrong. The mechanisms the options
// turn on live beside the code that uses them, or under internal/.

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

// Defaults.
const (
	// DefaultTimeout is the deadline a [Client] gives a unary call whose
	// context has none, and the idle timeout it gives such a stream, unless
	// changed with [WithDefaultTimeout].
	DefaultTimeout = 10 * time.Second
	// DefaultStreamReplies is how many greetings the built-in
	// SayHelloStreamReply sends unless changed with [WithStreamReplies].
	DefaultStreamReplies = 3
	// DefaultOverrunGrace is how long a handler may keep running after its
	// context ended before the server counts and logs it, unless changed
	// with [WithOverrunGrace].
	DefaultOverrunGrace = 100 * time.Millisecond
	// DefaultReplyReserve is the part of its budget a relay keeps for
	// itself to answer its caller, unless changed with [WithReplyReserve].
	DefaultReplyReserve = 10 * time.Millisecond
	// DefaultMaxAttempts is how many attempts [WithPerAttemptTimeout] makes
	// when given a maxAttempts of zero.
	DefaultMaxAttempts = 3
	// Gzip is the name of the gzip compressor, for [WithCompressor] and
	// grpc.UseCompressor. Importing greeter registers it with grpc.
	Gzip = gzip.Name
)

// Connection limits a [Server] advertises unless changed with
// [WithMaxConcurrentStreams] and [WithMaxHeaderListSize].
const (
	// DefaultMaxConcurrentStreams is how many calls one connection may
	// have open at once, the default of Go's own HTTP/2 server. It bounds
	// the goroutines and memory one connection can hold (grpc's default
	// has no bound), and grpc-go's defence against rapid-reset floods
	// counts against it. A client with more calls in flight on one
	// connection waits for a slot, or opens more connections.
	DefaultMaxConcurrentStreams = 250
	// DefaultMaxHeaderListSize is the largest header list, decoded, that
	// the server accepts on a call: 32KiB holds any real metadata (tokens,
	// trace context) where grpc's default of 16MiB lets a few streams of
	// repeated HPACK-indexed headers, one byte each on the wire, take
	// hundreds of megabytes. A larger list fails the call.
	DefaultMaxHeaderListSize = 32 << 10
)

// streamWorkersPerCPU sets the stream workers a [Server] starts
// (grpc.NumStreamWorkers): reusing a goroutine per call instead of starting
// one made greeter serve ahead of plain grpc-go in QPS and CPU per call
// (docs/performance.md); 16 per CPU, not 1, because with many callers from
// another process GOMAXPROCS workers were nearly always busy.
const streamWorkersPerCPU = 16

// minHeaderListSize is the least header list a server can serve calls
// with: grpc's own headers and a little metadata.
const minHeaderListSize = 4 << 10

// minWindowSize is HTTP/2's initial window; grpc ignores smaller windows.
const minWindowSize = 64 * 1024

// maxHedgedAttempts is the cap gRFC A6 puts on maxAttempts.
const maxHedgedAttempts = 5

// DefaultServerKeepalive returns the keepalive parameters [NewServer] uses
// unless [WithServerKeepalive] replaces them: after 2 minutes without any
// activity on a connection the server pings the client, and closes the
// connection if no answer comes within 20s, so that a client that vanished
// (crashed host, dropped NAT mapping) frees its connection and cancels its
// calls in under 2m20s, instead of TCP's hours. Connections are never closed
// for being idle or old (MaxConnectionIdle and MaxConnectionAge unset).
func DefaultServerKeepalive() keepalive.ServerParameters {
	return keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}
}

// DefaultKeepaliveEnforcement returns the policy [NewServer] applies to
// clients' keepalive pings unless [WithKeepaliveEnforcement] replaces it:
// pings at most every 5s are welcome, with or without calls in flight. That
// accepts every grpc-go client (they cannot ping more often than every 10s)
// where grpc's own default (5 minutes, not without calls) answers a client
// with keepalive on with GOAWAY "too_many_pings". A client that pings
// faster is still sent GOAWAY and disconnected, leaving others unaffected.
func DefaultKeepaliveEnforcement() keepalive.EnforcementPolicy {
	return keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}
}

// serverConfig is what the server options set.
type serverConfig struct {
	logger        *slog.Logger
	tls           *tls.Config
	tlsSet        bool
	unary         []grpc.UnaryServerInterceptor
	stream        []grpc.StreamServerInterceptor
	grpcOpts      []grpc.ServerOption
	reflection    bool
	names         []string
	handler       greeterpb.GreeterServer
	handlerSet    bool
	streamReplies int
	delay         time.Duration
	upstream      *Client
	upstreamSet   bool
	replyReserve  time.Duration
	reserveSet    bool

	// deadlines is set by the deadline options, which turn the guard on.
	deadlines bool
	policy    DeadlinePolicy
	methods   map[string]DeadlinePolicy
	grace     time.Duration

	keepalive   keepalive.ServerParameters
	enforcement keepalive.EnforcementPolicy
	maxStreams  uint32
	maxHeaders  uint32
	drainDelay  time.Duration
	window      windowSize
	connWindow  windowSize
	compressor  string
	failFirst   int
	recovery    bool
	requestID   bool

	// Observability (observability.go).
	accessLog bool // WithLogger given: one line per call
	telemetry telemetry
	metrics   *observe.ServerMetrics // nil without a MeterProvider
	// Scale-out: ORCA load reports.
	loadReports  bool
	loadInterval time.Duration

	sec serverSecurity // security.go
}

func newServerConfig(opts []ServerOption) (*serverConfig, error) {
	c := &serverConfig{
		logger:        slog.New(slog.DiscardHandler),
		reflection:    true,
		names:         []string{ServiceName, HelloworldServiceName},
		streamReplies: DefaultStreamReplies,
		replyReserve:  DefaultReplyReserve,
		grace:         DefaultOverrunGrace,
		keepalive:     DefaultServerKeepalive(),
		enforcement:   DefaultKeepaliveEnforcement(),
		maxStreams:    DefaultMaxConcurrentStreams,
		maxHeaders:    DefaultMaxHeaderListSize,
		recovery:      true,
	}
	for _, o := range opts {
		o.applyServer(c)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	var err error
	if c.metrics, err = c.telemetry.serverMetrics(); err != nil {
		return nil, err
	}
	c.logger = withIdentity(c.logger)
	return c, nil
}

func (c *serverConfig) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("greeter: "+format, args...))
		}
	}
	check(c.logger == nil, "WithLogger: nil logger")
	check(c.tlsSet && c.tls == nil, "WithTLS: nil *tls.Config")
	check(len(c.names) == 0, "WithServiceNames: no name given")
	for i, n := range c.names {
		check(n != ServiceName && n != HelloworldServiceName, "WithServiceNames(%q): unknown service name; want %q or %q", n, ServiceName, HelloworldServiceName)
		check(slices.Index(c.names, n) < i, "WithServiceNames: %q given twice", n)
	}
	check(c.handlerSet && c.handler == nil, "WithHandler: nil handler")
	check(c.handlerSet && c.upstreamSet, "WithHandler and WithUpstream both given: a relay is a handler of its own; choose one")
	check(c.streamReplies < 1, "WithStreamReplies(%d): must be at least 1", c.streamReplies)
	check(c.delay < 0, "WithDelay(%v): must not be negative", c.delay)
	check(c.upstreamSet && c.upstream == nil, "WithUpstream: nil client")
	check(c.reserveSet && !c.upstreamSet, "WithReplyReserve without WithUpstream")
	check(c.replyReserve < 0, "WithReplyReserve(%v): must not be negative", c.replyReserve)
	errs = append(errs, c.policy.validate("WithServerDeadlines"))
	for m, p := range c.methods {
		check(!c.servesMethod(m), "WithMethodDeadlines(%q): no such method; want SayHello, SayHelloAgain, SayHelloStreamReply, SayHelloBidiStream, or a full name such as /Greeter/SayHello", m)
		errs = append(errs, p.validate(fmt.Sprintf("WithMethodDeadlines(%q)", m)))
	}
	check(c.grace <= 0, "WithOverrunGrace(%v): must be positive", c.grace)
	k := c.keepalive
	check(k.Time < 0 || k.Timeout < 0 || k.MaxConnectionIdle < 0 || k.MaxConnectionAge < 0 || k.MaxConnectionAgeGrace < 0,
		"WithServerKeepalive(%+v): negative duration", k)
	check(c.enforcement.MinTime < 0, "WithKeepaliveEnforcement: MinTime %v: must not be negative", c.enforcement.MinTime)
	check(c.drainDelay < 0, "WithDrainDelay(%v): must not be negative", c.drainDelay)
	check(c.maxStreams < 1, "WithMaxConcurrentStreams(%d): must be at least 1", c.maxStreams)
	check(c.maxHeaders < minHeaderListSize, "WithMaxHeaderListSize(%d): must be at least %d (4KiB)", c.maxHeaders, minHeaderListSize)
	errs = append(errs, c.window.validate("WithInitialWindowSize"), c.connWindow.validate("WithInitialConnWindowSize"))
	errs = append(errs, validateCompressor(c.compressor))
	check(c.failFirst < 0, "WithFailFirst(%d): must not be negative", c.failFirst)
	errs = append(errs, c.telemetry.validate())
	check(c.loadInterval < 0, "WithLoadReports(%v): must not be negative (0 for DefaultLoadReportInterval)", c.loadInterval)
	errs = append(errs, c.sec.validate(c)...)
	return errors.Join(errs...)
}

// clientConfig is what the client options set.
type clientConfig struct {
	tls           *tls.Config
	tlsSet        bool
	insecure      bool
	timeout       time.Duration
	unary         []grpc.UnaryClientInterceptor
	stream        []grpc.StreamClientInterceptor
	dialOpts      []grpc.DialOption
	service       string
	serviceConfig string // grpc's JSON service config; empty for none

	perAttempt    time.Duration
	maxAttempts   int
	perAttemptSet bool
	streamIdle    time.Duration
	streamIdleSet bool
	hedging       *HedgingPolicy

	keepalive  *keepalive.ClientParameters
	window     windowSize
	connWindow windowSize
	compressor string

	// Observability (observability.go).
	logger    *slog.Logger // nil: no log lines
	loggerSet bool
	telemetry telemetry
	metrics   *observe.ClientMetrics // nil without a MeterProvider
	// Scale-out: load balancing and greeter's resolver.
	balancer     string
	addrInterval time.Duration

	sec clientSecurity // security.go
}

func newClientConfig(opts []ClientOption) (*clientConfig, error) {
	c := &clientConfig{
		timeout:       DefaultTimeout,
		service:       ServiceName,
		serviceConfig: DefaultServiceConfig,
		maxAttempts:   DefaultMaxAttempts,
	}
	for _, o := range opts {
		o.applyClient(c)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	var err error
	if c.metrics, err = c.telemetry.clientMetrics(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *clientConfig) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("greeter: "+format, args...))
		}
	}
	check(c.tlsSet && c.tls == nil, "WithTLS: nil *tls.Config")
	check(c.tlsSet && c.insecure, "WithTLS and WithInsecure both given: choose one")
	check(c.loggerSet && c.logger == nil, "WithLogger: nil logger")
	errs = append(errs, c.telemetry.validate())
	check(c.service == "", "WithServiceName: empty name")
	if c.perAttemptSet {
		check(c.perAttempt <= 0, "WithPerAttemptTimeout(%v, %d): timeout must be positive", c.perAttempt, c.maxAttempts)
		check(c.maxAttempts < 1, "WithPerAttemptTimeout(%v, %d): maxAttempts must not be negative", c.perAttempt, c.maxAttempts)
	}
	check(c.streamIdle < 0, "WithStreamIdleTimeout(%v): must not be negative (0 turns idle timeouts off)", c.streamIdle)
	if h := c.hedging; h != nil {
		check(h.MaxAttempts < 2, "WithHedging: MaxAttempts %d: must be at least 2", h.MaxAttempts)
		check(h.HedgingDelay < 0, "WithHedging: HedgingDelay %v: must not be negative", h.HedgingDelay)
	}
	if k := c.keepalive; k != nil {
		check(k.Time < 0 || k.Timeout < 0, "WithClientKeepalive(%+v): negative duration", *k)
	}
	errs = append(errs, c.window.validate("WithInitialWindowSize"), c.connWindow.validate("WithInitialConnWindowSize"))
	errs = append(errs, validateCompressor(c.compressor))
	errs = append(errs, validateBalancer(c.balancer))
	check(c.addrInterval < 0, "WithAddressFileInterval(%v): must not be negative (0 for the default, 1s)", c.addrInterval)
	errs = append(errs, c.sec.validate(c)...)
	return errors.Join(errs...)
}

// servesMethod reports whether m names a Greeter method, by its name or by
// its full name under a service name the server serves.
func (c *serverConfig) servesMethod(m string) bool {
	for _, name := range []string{"SayHello", "SayHelloAgain", "SayHelloStreamReply", "SayHelloBidiStream"} {
		if m == name {
			return true
		}
		for _, svc := range c.names {
			if m == "/"+svc+"/"+name {
				return true
			}
		}
	}
	return false
}

// policyBounds reports whether a deadline policy gives some calls a default
// or a cap, which the server then applies as streams open.
func (c *serverConfig) policyBounds() bool {
	if c.policy.Default > 0 || c.policy.Max > 0 {
		return true
	}
	for _, p := range c.methods {
		if p.Default > 0 || p.Max > 0 {
			return true
		}
	}
	return false
}

// windowSize is a flow-control window an option set, or none.
type windowSize struct {
	n   int32
	set bool
}

func (w windowSize) validate(option string) error {
	if w.set && w.n < minWindowSize {
		return fmt.Errorf("greeter: %s(%d): must be at least %d (64KiB)", option, w.n, minWindowSize)
	}
	return nil
}

func validateCompressor(name string) error {
	if name != "" && encoding.GetCompressor(name) == nil {
		return fmt.Errorf("greeter: WithCompressor(%q): no such compressor registered with grpc/encoding", name)
	}
	return nil
}

// Both sides.

// WithTLS secures the connection with TLS using cfg: the server presents
// cfg.Certificates, the client verifies the server against cfg.RootCAs (or
// the system roots when nil). A nil cfg, a cfg.MinVersion below TLS 1.2,
// and on a server a cfg with no Certificates, GetCertificate or
// GetConfigForClient, are errors at construction; TLS 1.3 is chosen
// whenever both sides have it. [WithTLSFiles] takes PEM files instead,
// re-read when they change.
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

// WithCompressor compresses the messages this side sends with the named
// compressor, [Gzip] or one registered with grpc's encoding package. The
// default is no compression: it pays only for large, repetitive messages.
//
// On a client it compresses every request (a single call can also ask with
// the grpc.UseCompressor call option). A server always answers a compressed
// request in kind; on a server this option also compresses the responses to
// uncompressed requests, for clients that say they accept name (all grpc
// clients that link the compressor in do). Naming an unregistered compressor
// is an error at construction. [Register] ignores it.
func WithCompressor(name string) Option {
	return option{
		server: func(c *serverConfig) { c.compressor = name },
		client: func(c *clientConfig) { c.compressor = name },
	}
}

// WithInitialWindowSize fixes the flow-control window of each stream this
// side receives on, in bytes: how much a peer may send on one call before it
// must wait for this side to read. By default grpc starts at 64KiB and
// grows the window as it measures the connection (BDP estimation), up to
// 16MiB. Setting a window turns that estimation off for this side. n must be
// at least 64KiB. A receiver that stops reading holds at most this much per
// stream: the sender's Send blocks instead of buffering without limit.
// [Register] ignores it.
func WithInitialWindowSize(n int32) Option {
	return option{
		server: func(c *serverConfig) { c.window = windowSize{n, true} },
		client: func(c *clientConfig) { c.window = windowSize{n, true} },
	}
}

// WithInitialConnWindowSize is [WithInitialWindowSize] for the whole
// connection, shared by all its streams. n must be at least 64KiB.
func WithInitialConnWindowSize(n int32) Option {
	return option{
		server: func(c *serverConfig) { c.connWindow = windowSize{n, true} },
		client: func(c *clientConfig) { c.connWindow = windowSize{n, true} },
	}
}

// Both sides: observability. docs/observability.md is the guide.

// WithLogger sets the logger of a server or a client. Each call gets one
// structured line when it ends, through go-grpc-middleware v2's logging
// interceptor ("finished call": method, code, duration, the budget and its
// source; on a server also the peer, the request id and the caller's
// identity; on a client's unary calls the peer and the request id), at
// go-grpc-middleware's level for its code
// (a server logs OK at Info, a client at Debug). A server also logs its
// diagnostics there: deadline events, handlers that outlive their calls,
// recovered panics with their stacks, relay failures; under [Register]
// only those diagnostics. The default discards everything and costs
// nothing: the library never logs on its own. A nil l is an error at
// construction.
func WithLogger(l *slog.Logger) Option {
	return option{
		server: func(c *serverConfig) { c.logger, c.accessLog = l, true },
		client: func(c *clientConfig) { c.logger, c.loggerSet = l, true },
	}
}

// WithMeterProvider records metrics into mp: grpc-go's own OpenTelemetry
// instruments (grpc.server.call.duration, grpc.client.attempt.duration and
// the rest of gRFC A66, by grpc.method and grpc.status) and greeter's
// deadline instruments (greeter.server.deadline.exceeded by the budget's
// source, greeter.server.handler.overruns, greeter.client.deadline.errors by
// source and phase). Export them with any OpenTelemetry exporter; greeter
// serve --metrics-addr serves them for Prometheus. The server's deadline
// instruments count what its deadline guard sees, so they need a deadline
// option ([WithServerDeadlines]). Under [Register] only greeter's deadline
// instruments apply: instrument the registrar's own server with grpc-go's
// stats/opentelemetry. The default is no metrics, at no cost; a nil mp is
// an error at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return option{
		server: func(c *serverConfig) { c.telemetry.setMeterProvider(mp) },
		client: func(c *clientConfig) { c.telemetry.setMeterProvider(mp) },
	}
}

// WithTracerProvider traces every call with tp: grpc-go's OpenTelemetry
// tracing (gRFC A72: a client span per call, "Sent.Greeter.SayHello", a
// child per attempt, and a server span, "Recv.Greeter.SayHello"), with the
// trace context carried in W3C traceparent and baggage headers unless
// [WithPropagator] says otherwise, so that a relay chain ([WithUpstream])
// is one trace. Spans carry the call's budget in milliseconds
// (greeter.budget_ms) and where it came from (greeter.budget.source).
// [Register] ignores it on a server. The default is no tracing, at no
// cost; a nil tp is an error at construction.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return option{
		server: func(c *serverConfig) { c.telemetry.setTracerProvider(tp) },
		client: func(c *clientConfig) { c.telemetry.setTracerProvider(tp) },
	}
}

// WithPropagator sets how [WithTracerProvider]'s trace context travels
// between a client and a server; the default is W3C trace context and
// baggage, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{},
// propagation.Baggage{}). It has no effect without a TracerProvider; a nil
// p is an error at construction.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return option{
		server: func(c *serverConfig) { c.telemetry.setPropagator(p) },
		client: func(c *clientConfig) { c.telemetry.setPropagator(p) },
	}
}

// Server: what it serves.

// WithHandler serves h, the importer's own implementation of the Greeter
// service, in place of the built-in greeting. Everything greeter does
// around a handler applies to h: the deadline policy and its errors
// ([WithServerDeadlines], [WithMethodDeadlines]), overrun detection
// ([WithOverrunGrace]), panic recovery, request ids ([WithRequestID]),
// fault injection ([WithFailFirst]), simulated work ([WithDelay]),
// compression, keepalive and the raw grpc options; a name that is not
// valid UTF-8 is refused with InvalidArgument before h sees it. What
// belongs to the built-in greeting does not: the rest of name validation
// (h checks its own input) and [WithStreamReplies]. WithHandler and [WithUpstream] exclude each other.
// A nil h is an error at construction.
func WithHandler(h greeterpb.GreeterServer) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.handler, c.handlerSet = h, true })
}

// WithServiceNames sets the full names the Greeter is served under:
// [ServiceName] ("Greeter", the package-less proto's), [HelloworldServiceName]
// ("helloworld.Greeter", upstream gRPC's examples'), or both, the default.
// Pick one with [Register] on a grpc.Server that already serves the other.
func WithServiceNames(names ...string) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.names = slices.Clone(names) })
}

// WithStreamReplies sets how many greetings the built-in SayHelloStreamReply
// sends for one request; the default is [DefaultStreamReplies]. It must be
// at least 1.
func WithStreamReplies(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.streamReplies = n })
}

// WithDelay makes the handler work for d before each reply (before each
// reply of a stream), waiting on a timer or on the end of its context,
// whichever comes first: simulated work that stops the moment the caller
// goes away, to show every deadline scenario. It wraps whatever handler
// the server serves (the built-in greeting, a relay, [WithHandler]'s) and
// changes nothing else. The default is no delay; d must not be negative.
func WithDelay(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.delay = d })
}

// WithUpstream makes the server a relay: every method is answered by calling
// the same method on upstream, a greeter [Client] the caller builds and
// closes, after any simulated work ([WithDelay]). The upstream call gets the
// call's remaining budget minus the reply reserve ([WithReplyReserve]) and is
// cancelled the moment the relay's own caller goes away; a budget smaller
// than the reserve fails at once with DeadlineExceeded, without calling
// upstream. The upstream's errors keep their code; where the upstream is
// and why it could not be reached go to the server's log, not to the
// caller. Each relay counts itself in the greeter-hops header, and a call
// that has passed through 8 relays is refused with FailedPrecondition
// ("relay loop"), so that relays pointing at each other cost one failed
// call, not a storm. The default is no upstream: the server answers
// itself.
func WithUpstream(upstream *Client) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.upstream, c.upstreamSet = upstream, true })
}

// WithReplyReserve sets how much of its remaining budget a relay
// ([WithUpstream]) keeps to answer its caller after the upstream call ends;
// the default is [DefaultReplyReserve]. Without it, an upstream call that
// uses the whole budget leaves no time to reply and the caller sees its own
// deadline pass instead of the upstream's error.
func WithReplyReserve(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.replyReserve, c.reserveSet = d, true })
}

// WithFailFirst injects a fault for testing retries: the server fails the
// first n attempts of every call to the Greeter service with UNAVAILABLE, and
// serves the attempt after. Attempts are told apart by the
// grpc-previous-rpc-attempts header that grpc's retries and greeter's
// hedging send, so a client that does not retry gets UNAVAILABLE on every
// call. The default, 0, injects nothing and costs nothing; n must not be
// negative. It applies under [Register] too.
func WithFailFirst(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.failFirst = n })
}

// Server: deadlines. The deadline options turn on the server's deadline
// guard, which costs a little per call and is off by default: see
// [WithServerDeadlines].

// WithServerDeadlines sets the server's deadline policy for every method:
// see [DeadlinePolicy]. It turns on the deadline guard: handlers whose
// context ends because the deadline passed see ctx.Err() ==
// context.DeadlineExceeded (never Canceled) and the status and log say
// DeadlineExceeded (a context derived from the handler's, such as an
// onward call's, keeps grpc's own verdict, which is Canceled when the
// client's reset arrived before the server's timer: ask the handler's
// context); handlers that run on after their context ended are
// counted and logged ([WithOverrunGrace]). [WithMethodDeadlines] and
// [WithOverrunGrace] turn it on too; nothing else does. The default is no
// policy and no guard.
func WithServerDeadlines(p DeadlinePolicy) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadlines, c.policy = true, p })
}

// WithMethodDeadlines sets the deadline policy of one method, by its name
// ("SayHello", under both service names) or its full name
// ("/Greeter/SayHello"), in place of the server-wide one. It turns on the
// deadline guard as [WithServerDeadlines] does.
func WithMethodDeadlines(method string, p DeadlinePolicy) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		c.deadlines = true
		if c.methods == nil {
			c.methods = map[string]DeadlinePolicy{}
		}
		c.methods[method] = p
	})
}

// WithOverrunGrace sets how long a handler may run on after its context
// ended before the server counts it ([Server.Overruns]) and logs it at Warn
// with its method: grace after its deadline for a call with one (also when
// its caller left earlier), grace after its caller left for a call without.
// The server looks every half grace (no more often than every 5ms) while
// such calls run, so a handler is counted between grace and one and a half
// grace after that (grace plus 5ms for a grace under 10ms), or when it
// returns if that comes first. [Server.Shutdown] also names every handler
// still running when it forces the stop. It turns on the deadline guard as
// [WithServerDeadlines] does; the default grace is [DefaultOverrunGrace],
// and d must be positive.
func WithOverrunGrace(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadlines, c.grace = true, d })
}

// Server: the rest.

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

// WithGRPCServerOptions passes raw grpc server options to [grpc.NewServer],
// after greeter's own, so that they win where the two disagree. Repeated uses
// append. [Register] ignores it.
func WithGRPCServerOptions(o ...grpc.ServerOption) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.grpcOpts = append(c.grpcOpts, o...) })
}

// WithoutReflection turns off the server reflection service, which
// [NewServer] registers by default so that tools such as grpcurl can list and
// describe the service. [Register] ignores it.
func WithoutReflection() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.reflection = false })
}

// WithoutRecovery turns off panic recovery, which [NewServer] installs by
// default as its outermost interceptor (go-grpc-middleware's recovery): a
// panic in a handler or in any interceptor then crashes the process instead
// of failing that one call with Internal and logging the panic with its
// stack at Error level. [Register] ignores it: the registrar's own server
// owns its interceptors.
func WithoutRecovery() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.recovery = false })
}

// WithRequestID gives every call a request id: the caller's own from the
// x-request-id header ([RequestIDHeader]) when it sends a usable one
// (printable ASCII, at most 128 bytes), otherwise one the server makes up.
// The id is put in the context that the handler and every interceptor given
// with [WithUnaryServerInterceptor] see, read it with [RequestIDFromContext],
// and sent back in the x-request-id response header (in the trailer when
// the call fails before any response, so that grpc can still retry it).
//
// The handler's context carries greeter's own transport stream, so that
// the id goes out however the header is sent; grpc.SetSendCompressor does
// not accept it: compress responses with [WithCompressor] instead.
//
// It is off by default because it costs allocations on every call; a made-up
// id is cheap (a random per-server prefix and a counter, no entropy read
// per call) and unique per server, not unguessable. [Register] ignores it.
func WithRequestID() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.requestID = true })
}

// WithServerKeepalive sets the server's keepalive parameters; the default is
// [DefaultServerKeepalive]. Time is how long a connection may be silent
// before the server pings (grpc raises values below 1s to 1s), Timeout how
// long it waits for the answer before closing the connection.
// MaxConnectionIdle closes a connection with no call for that long (with a
// GOAWAY: clients reconnect when next needed); MaxConnectionAge closes any
// connection after that long, plus MaxConnectionAgeGrace for calls in
// flight, which spreads clients over new backends. p replaces the default
// whole, and a zero field means grpc's default (a 2h ping interval for
// Time): start from DefaultServerKeepalive() to change one field. A
// negative duration is an error at construction. [Register] ignores it.
func WithServerKeepalive(p keepalive.ServerParameters) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.keepalive = p })
}

// WithDrainDelay makes [Server.Shutdown] keep accepting and serving for d
// after health turns NOT_SERVING, before it stops accepting and drains the
// calls in flight: the time a load balancer, a client with client-side
// health checking ([ServiceConfigWithHealthCheck]) or a Kubernetes
// readiness probe needs to see NOT_SERVING and send new calls elsewhere,
// so that none of them is refused. For Kubernetes, make d at least the
// readiness probe's periodSeconds times its failureThreshold, and
// terminationGracePeriodSeconds at least d plus Shutdown's grace. The
// default is 0: Shutdown stops accepting at once. d must not be negative;
// Shutdown's context bounds the delay too. [Register] ignores it.
func WithDrainDelay(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.drainDelay = d })
}

// WithLoadReports makes the server report its load to clients with ORCA
// (Open Request Cost Aggregation, grpc-go's orca package), for load
// balancers such as grpc's weighted_round_robin that send less traffic to
// busier backends. Every interval (0 means [DefaultLoadReportInterval]) it
// measures its CPU utilization (the process's CPU time divided by the
// interval times GOMAXPROCS), its memory utilization (the Go runtime's memory over
// GOMEMLIMIT, only when a limit is set), the greetings it served per
// second, and the greetings in flight as the named metric
// [InFlightMetric]. Each call's trailer carries the latest report
// (per-call reports), and the server registers the OpenRcaService, whose
// StreamCoreMetrics stream sends it out of band, at most every 30s (grpc-go's
// floor) or every interval if longer. [Server.LoadRecorder] sets the
// application's own metrics: an application utilization there takes CPU's
// place in weighted_round_robin's weights.
//
// Off by default: it costs a goroutine, and the report in each trailer
// costs allocations (161 to 208 per call, client and server together, over
// TCP).
// interval must not be negative. [Register] ignores it.
func WithLoadReports(interval time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.loadReports, c.loadInterval = true, interval })
}

// WithMaxConcurrentStreams sets how many calls one connection may have
// open at once, advertised to clients in HTTP/2's
// SETTINGS_MAX_CONCURRENT_STREAMS; the default is
// [DefaultMaxConcurrentStreams]. n must be at least 1. [Register] ignores it.
func WithMaxConcurrentStreams(n uint32) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.maxStreams = n })
}

// WithMaxHeaderListSize sets the largest header list, in bytes as HTTP/2
// counts them (decoded, 32 bytes more per field), that the server accepts
// on a call, advertised in SETTINGS_MAX_HEADER_LIST_SIZE; the default is
// [DefaultMaxHeaderListSize]. n must be at least 4KiB. [Register] ignores
// it.
func WithMaxHeaderListSize(n uint32) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.maxHeaders = n })
}

// WithKeepaliveEnforcement sets how often clients may ping; the default is
// [DefaultKeepaliveEnforcement]. A client pinging more often than
// p.MinTime (or at all without calls in flight, unless
// p.PermitWithoutStream) three times is sent GOAWAY with "too_many_pings"
// and disconnected. [Register] ignores it.
func WithKeepaliveEnforcement(p keepalive.EnforcementPolicy) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.enforcement = p })
}

// Client.

// WithInsecure makes the client speak plaintext HTTP/2, with no transport
// security: for local development, tests and loopback only. It must be asked
// for explicitly; see [WithTLS].
func WithInsecure() ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.insecure = true })
}

// WithDefaultTimeout sets the deadline given to a unary call whose context has
// no deadline; the default is [DefaultTimeout]. A deadline the caller set is
// never lengthened nor shortened by it. A stream whose context has no
// deadline gets d as its idle timeout instead: it ends after d without a
// message ([WithStreamIdleTimeout] sets that apart). A d of zero or less opts
// out: calls whose context has no deadline then run without one.
func WithDefaultTimeout(d time.Duration) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.timeout = d })
}

// WithServiceName sets the service name the client calls: [ServiceName]
// ("Greeter", the default) or [HelloworldServiceName] ("helloworld.Greeter",
// for servers built from upstream gRPC's helloworld examples).
func WithServiceName(name string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.service = name })
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

// WithPerAttemptTimeout gives each attempt of a unary call at most d,
// min(d, what is left of the call's deadline), and retries an attempt that
// ran out of its own time, or ended Unavailable, up to maxAttempts attempts
// in all (0 means [DefaultMaxAttempts]), with exponential backoff from 25ms.
// Retries never start or sleep past the call's overall deadline: when the
// backoff would, the call ends at once with the last attempt's error. The
// final error keeps the last attempt's code; a [DeadlineError] counts the
// attempts. By default there is no per-attempt timeout and one attempt.
//
// grpc's service-config retry policy has no per-attempt timeout, so this
// option takes its place: the client's service-config retries (those of
// [DefaultServiceConfig] included) are turned off with grpc.WithDisableRetry,
// because two retry layers would multiply attempts and let grpc's backoff
// eat an attempt's time. grpc's transparent retries of calls that never
// reached a server still happen.
func WithPerAttemptTimeout(d time.Duration, maxAttempts int) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		c.perAttempt, c.maxAttempts, c.perAttemptSet = d, maxAttempts, true
		if maxAttempts == 0 {
			c.maxAttempts = DefaultMaxAttempts
		}
	})
}

// WithStreamIdleTimeout ends a stream on which no message has been sent or
// received for d, with DeadlineExceeded and a [DeadlineError] whose Source is
// [SourceStreamIdle]. Each message resets the clock, so a long stream that
// keeps moving needs no whole-stream deadline. It applies to every stream,
// with a deadline or not; a d of zero turns idle timeouts off, the default
// one included.
//
// By default a stream whose context has no deadline gets the client's
// default timeout ([WithDefaultTimeout], [DefaultTimeout]) as its idle
// timeout, so that no call runs unbounded unless the importer opts out; a
// stream with a deadline gets none.
func WithStreamIdleTimeout(d time.Duration) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.streamIdle, c.streamIdleSet = d, true })
}

// HedgingPolicy says how to hedge a unary call, with the meaning of gRFC A6's
// hedgingPolicy (https://github.com/grpc/proposal/blob/master/A6-client-retries.md):
// send the call, and if no answer has come after HedgingDelay send it again,
// up to MaxAttempts copies in flight at once; the first answer that is OK or
// has a status not in NonFatalStatusCodes wins, and every other attempt is
// cancelled. An attempt that fails with a non-fatal code makes the next one
// start at once. When every attempt has failed with a non-fatal code, the
// call returns the last failure. All attempts share the call's one deadline.
//
// Hedging trades load for tail latency: use it only for idempotent calls
// (greetings are) and small MaxAttempts.
type HedgingPolicy struct {
	// MaxAttempts is the most copies of the call sent, the first included:
	// at least 2; values over 5 count as 5, as in gRFC A6.
	MaxAttempts int
	// HedgingDelay is the wait before sending each further copy while none
	// has answered; 0 sends all MaxAttempts copies at once.
	HedgingDelay time.Duration
	// NonFatalStatusCodes are the codes that do not end the call: another
	// attempt may still succeed. Typically codes.Unavailable. Empty means
	// every failure is fatal.
	NonFatalStatusCodes []codes.Code
}

// WithHedging hedges the client's unary calls (SayHello, SayHelloAgain) with
// p; the default is no hedging. grpc-go reads no hedgingPolicy from the
// service config (grpc-go#2823), so greeter implements it as the innermost
// client interceptor: interceptors given with [WithUnaryClientInterceptor]
// see one call. Streams are not hedged. Each attempt carries the
// grpc-previous-rpc-attempts header. As gRFC A6 makes a method's hedging and
// retry policies exclusive, grpc's service-config retries (those of
// [DefaultServiceConfig] included) are turned off with
// grpc.WithDisableRetry: list codes.Unavailable in NonFatalStatusCodes to
// have a failed attempt followed at once by the next. grpc.Header,
// grpc.Trailer and grpc.Peer call options report the winning attempt.
// An invalid p is an error at [NewClient].
func WithHedging(p HedgingPolicy) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		p.NonFatalStatusCodes = slices.Clone(p.NonFatalStatusCodes)
		c.hedging = &p
	})
}

// WithClientKeepalive makes the client ping the server after p.Time without
// activity and close the connection (failing its calls with Unavailable) if
// no answer comes within p.Timeout: this detects a server or network path
// that died silently. grpc raises a Time below 10s to 10s.
//
// The default is grpc's: no client keepalive, because a server that enforces
// grpc's default policy (no pings more often than every 5 minutes, none
// without calls) disconnects clients that ping more. Against a greeter
// server, {Time: 30 * time.Second, Timeout: 10 * time.Second,
// PermitWithoutStream: true} is safe.
func WithClientKeepalive(p keepalive.ClientParameters) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.keepalive = &p })
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

// WithLoadBalancing selects the client's load-balancing policy by name:
// "pick_first" (grpc's default: one backend at a time), "round_robin",
// "weighted_round_robin" (weights from the servers' load reports, see
// [WithLoadReports]), or greeter's own [LeastRequestBalancer]; any policy
// registered with grpc's balancer package works. It sets the
// loadBalancingConfig of the client's service config ([WithServiceConfig],
// [DefaultServiceConfig] by default), keeping the rest: with
// [ServiceConfigWithHealthCheck], the policy replaces its round_robin and
// client-side health checking stays on for the policies that act on it
// (round_robin, weighted_round_robin, [LeastRequestBalancer]; not
// pick_first). The policy's
// settings are its defaults: for others, give the whole
// loadBalancingConfig in WithServiceConfig instead. The default is none
// (the service config decides). An unknown name is an error at
// [NewClient].
func WithLoadBalancing(policy string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.balancer = policy })
}

// WithAddressFileInterval sets how often a client built for a
// greeter://file/PATH target reads the file of addresses again; the
// default is 1s. The file is also read again whenever a connection to one
// of its addresses fails. d must not be negative; 0 means the default.
func WithAddressFileInterval(d time.Duration) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.addrInterval = d })
}

// WithDialOptions passes raw grpc dial options to [grpc.NewClient], after
// greeter's own, so that they win where the two disagree. Repeated uses
// append.
func WithDialOptions(o ...grpc.DialOption) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.dialOpts = append(c.dialOpts, o...) })
}

// Security: docs/security.md is the guide; the mechanisms are in
// security.go and internal/auth, internal/ratelimit.

// WithTLSFiles secures the connection with TLS from PEM files that are
// re-read every f.Refresh, so that a renewed certificate, key or CA bundle
// takes effect for new connections without a restart (see [TLSFiles]). On
// a server, f.CertFile and f.KeyFile are required, and f.CAFile turns on
// mutual TLS: clients must present a certificate that chains to it. On a
// client, f.CAFile verifies the server (the system's roots when empty) and
// f.CertFile and f.KeyFile are the client certificate. TLS 1.2 is the
// least version spoken, and TLS 1.3 is chosen whenever both sides have it.
// The files are read once at construction, and a missing or bad file is
// an error there. It cannot be combined with [WithTLS]. [Register] ignores
// it.
func WithTLSFiles(f TLSFiles) Option {
	return option{
		server: func(c *serverConfig) { c.sec.files = &f },
		client: func(c *clientConfig) { c.sec.files = &f },
	}
}

// WithTokenValidator makes the server ask every call for a bearer token
// (the "authorization: Bearer TOKEN" metadata [WithBearerToken] sends) and
// check it with v; health checks are exempt, so that probes need none. A
// call without a token, or with one v refuses, ends Unauthenticated with a
// message that says what to send and never repeats the token; v may refuse
// a valid token with PermissionDenied. [StaticTokens] builds a v for a
// fixed set of tokens. The identity v returns is the call's
// [PeerIdentity] (unless a client certificate names one) and reaches an
// authorization policy in [IdentityHeader]. By default no token is asked
// for. Tokens travel in the clear over plaintext: serve them over TLS.
// [Register] ignores it.
func WithTokenValidator(v TokenValidator) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.sec.tokens, c.sec.tokensSet = v, true })
}

// WithAuthzPolicy makes the server authorize every call with grpc's authz
// engine and policy, a JSON document in gRPC's authorization policy
// format (gRFC A43): rules that allow or deny methods
// ("paths": ["/Greeter/SayHelloAgain"]) to principals (the identities
// client certificates name, see [PeerIdentity]) and to requests with
// given headers (token holders, by [IdentityHeader]). A call the policy
// does not allow ends PermissionDenied, with a message naming the caller
// and the method. Health checks and reflection are methods like any
// other: allow them in the policy when probes and tools need them. An
// invalid policy is an error at construction, and so is a [WithTLS]
// config that takes client certificates without verifying them
// (tls.RequestClientCert, tls.RequireAnyClientCert): grpc's authz matches
// principals in whatever certificate a client presents. By default every
// call is allowed. It runs after the token check of [WithTokenValidator] and
// before [WithRateLimit]. [Register] ignores it.
func WithAuthzPolicy(policyJSON string) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.sec.policy, c.sec.policySet = policyJSON, true })
}

// WithAuthzPolicyFile is [WithAuthzPolicy] with the policy read from path
// and read again every refresh (zero means [DefaultAuthzRefresh]): a new
// policy takes effect without a restart, and the server logs
// "authorization policy loaded" at Info. A file that cannot be read or
// parsed is an error at [NewServer]; later, it leaves the last good policy
// in force, and the server logs "authorization policy not loaded" at Warn
// with the reason. [Register] ignores it.
func WithAuthzPolicyFile(path string, refresh time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.sec.policyFile, c.sec.policyEvery = path, refresh })
}

// WithRateLimit lets each client make perSecond calls a second, in bursts
// of up to burst, counting calls and streams opened; health checks are not
// counted. A client is its [PeerIdentity] when it has one, else its IP
// address. A call over the limit ends ResourceExhausted, with an
// errdetails.RetryInfo detail and a message that say how long to wait.
// perSecond must be positive and burst at least 1. By default there is no
// limit. [Register] ignores it.
func WithRateLimit(perSecond float64, burst int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.sec.rate, c.sec.burst, c.sec.rateSet = perSecond, burst, true })
}

// WithBearerToken makes the client send token with every call, in the
// "authorization: Bearer TOKEN" metadata that [WithTokenValidator]
// checks. It is never sent over plaintext: with [WithInsecure] it is an
// error at construction, and a call over a connection that is not
// encrypted fails Unauthenticated without sending it. The default sends
// no token.
func WithBearerToken(token string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.sec.token, c.sec.tokenSet = token, true })
}

// serverWorkers is the stream-worker count a Server starts with.
func serverWorkers() uint32 { return uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0)) }
