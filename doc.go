// Package greeter serves and calls the gRPC Greeter service, the service of
// gRPC's helloworld tutorials, over grpc-go.
//
// The wire contract is greeter.proto: the classic package-less helloworld
// proto, so the service's full name is "Greeter" ([ServiceName]) and any
// client or server generated from it, in any language, interoperates. The
// server also answers as "helloworld.Greeter" ([HelloworldServiceName]), the
// name upstream gRPC's own examples use.
//
// # Serving
//
// [NewServer] builds a [Server] that serves the Greeter, the standard health
// service and server reflection on any net.Listener; [Server.Shutdown]
// drains it within a context's deadline. The Greeter it serves is the
// built-in greeting ("Hello, NAME!"), a relay to another greeter
// ([WithUpstream]), or the importer's own implementation of
// greeterpb.GreeterServer ([WithHandler]), with greeter's deadline policy,
// recovery and the rest around it. [Register] adds the Greeter to a
// grpc.Server you already run, under the names [WithServiceNames] picks,
// and returns an error, rather than grpc's fatal one, when a name is taken.
//
// # Calling
//
// [NewClient] builds a [Client] on one lazily connected grpc.ClientConn:
//
//	c, err := greeter.NewClient("localhost:50051", greeter.WithInsecure())
//	if err != nil { ... }
//	defer c.Close()
//	msg, err := c.SayHello(ctx, "you") // "Hello, you!"
//
// Every error a call returns carries a gRPC status: use status.Code(err).
// A call whose context has no deadline gets [DefaultTimeout]: a unary call
// as its deadline, a stream as its idle timeout.
//
// # Deadlines
//
// A DeadlineExceeded or Canceled error from a Client is a [*DeadlineError]:
// status.Code and errors.Is(err, context.DeadlineExceeded) work as usual,
// and it says which budget ran out ([DeadlineSource]), in which [Phase],
// after how many attempts. Servers enforce a [DeadlinePolicy] (a default
// for calls without a deadline, a cap, a minimum budget) with
// [WithServerDeadlines], whose guard also reports deadlines exactly and
// counts handlers that outlive their call; handlers read [Remaining]; [WithUpstream] relays a
// call with its remaining budget; [WithPerAttemptTimeout] and
// [WithStreamIdleTimeout] bound attempts and idle streams. docs/deadlines.md
// is the guide.
//
// # Resilience
//
// [NewClient] applies [DefaultServiceConfig] (retries on UNAVAILABLE, with
// throttling) unless [WithServiceConfig] replaces it; [WithHedging] hedges
// unary calls. Servers recover from panics (Internal), reject an empty or
// over-long name with InvalidArgument and field violations, enforce
// keepalive, and answer health checks. docs/resilience.md and
// docs/errors.md cover each feature and every status code.
//
// # Observability
//
// [WithMeterProvider] records grpc-go's standard OpenTelemetry metrics and
// greeter's deadline instruments (expiries by where the budget came from);
// [WithTracerProvider] traces calls, with W3C trace context across relays;
// [WithLogger] logs one structured line per call, with its budget and
// source. All three fit both sides and cost nothing when absent.
// docs/observability.md is the guide.
//
// # Scaling out
//
// A client spreads its calls over a fleet: any gRPC target works,
// greeter's own "greeter:///HOST:PORT,HOST:PORT" lists and
// "greeter://file/PATH" watched files included (resolved per client,
// never registered globally); [WithLoadBalancing] picks the policy
// (round_robin, weighted_round_robin, or greeter's [LeastRequestBalancer]);
// servers report their load with ORCA for weighted_round_robin
// ([WithLoadReports]). Package greeter/xds adds xds:/// targets.
// docs/scaling.md is the guide.
//
// # Security
//
// [WithTLSFiles] serves and calls over TLS from PEM files that are re-read
// when they change, with mutual TLS when a server is given a client CA;
// [PeerIdentity] tells a handler who calls. [WithTokenValidator] and
// [StaticTokens] check bearer tokens that [WithBearerToken] sends, never
// over plaintext; [WithAuthzPolicy] and [WithAuthzPolicyFile] apply
// grpc's authorization policies; [WithRateLimit] limits each client's
// rate. docs/security.md is the guide.
//
// # Options
//
// [ServerOption] and [ClientOption] configure each side; an [Option] such
// as [WithTLS] or [WithCompressor] fits both. Each option's doc states its
// default; a constructor validates them all and names the one that is
// wrong. Raw grpc options pass through
// [WithGRPCServerOptions] and [WithDialOptions], and every call takes
// grpc.CallOption values.
//
// # Testing
//
// Package greetertest runs a real Server in process over bufconn, in the
// manner of net/http/httptest: greetertest.NewClient(t) is one call, and
// greetertest.NewServer(t, opts...) with its Client(t, opts...) method takes
// server and client options; both clean up with the test.
//
// See the Examples for each of these in runnable form.
package greeter

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=. --go_opt=module=github.com/grpc-greeter/greeter --go-grpc_out=. --go-grpc_opt=module=github.com/grpc-greeter/greeter greeter.proto"
