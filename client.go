package greeter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

type clientConfig struct {
	tls      *tls.Config
	tlsSet   bool
	insecure bool
	timeout  time.Duration
	unary    []grpc.UnaryClientInterceptor
	stream   []grpc.StreamClientInterceptor
	dialOpts []grpc.DialOption
	service  string
	// serviceConfig is grpc's JSON service config; empty for none.
	serviceConfig string
	res           clientResilience
	deadline      deadlineOptions
}

func newClientConfig(opts []ClientOption) (*clientConfig, error) {
	c := &clientConfig{
		timeout:       DefaultTimeout,
		service:       ServiceName,
		serviceConfig: DefaultServiceConfig,
	}
	for _, o := range opts {
		o.applyClient(c)
	}
	return c, c.validate()
}

func (c *clientConfig) validate() error {
	switch {
	case c.tlsSet && c.tls == nil:
		return errors.New("greeter: WithTLS: nil *tls.Config")
	case c.tlsSet && c.insecure:
		return errors.New("greeter: WithTLS and WithInsecure both given: choose one")
	case c.service == "":
		return errors.New("greeter: WithServiceName: empty name")
	case len(c.res.errs) > 0:
		return errors.Join(c.res.errs...)
	}
	return c.deadline.validate()
}

// Client calls the Greeter service over one shared connection. It is safe
// for concurrent use; build it once with [NewClient] and [Client.Close] it
// when done.
type Client struct {
	conn     *grpc.ClientConn
	timeout  time.Duration
	deadline deadlineOptions
	// grpcRetries: grpc's service-config retries are on (greeter's own
	// attempts turn them off).
	grpcRetries bool
	// Full method names, computed once for the configured service name.
	sayHello, sayHelloAgain, streamReply, bidi string
	// statuses are the statuses of the client's DeadlineErrors.
	statuses statusCache
}

// NewClient builds a Client for target, a gRPC target such as
// "localhost:50051" or "dns:///greeter.example.com:443". Like
// [grpc.NewClient] it does no network I/O: the connection is made on the
// first call. It fails when an option is invalid or no transport security
// was chosen ([WithTLS], [WithInsecure], or credentials through
// [WithDialOptions]).
func NewClient(target string, opts ...ClientOption) (*Client, error) {
	cfg, err := newClientConfig(opts)
	if err != nil {
		return nil, err
	}
	var dopts []grpc.DialOption
	switch {
	case cfg.tls != nil:
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(cfg.tls)))
	case cfg.insecure:
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	dopts = append(dopts,
		grpc.WithChainUnaryInterceptor(clientUnaryInterceptors(cfg)...),
		grpc.WithChainStreamInterceptor(cfg.stream...),
	)
	if cfg.serviceConfig != "" {
		dopts = append(dopts, grpc.WithDefaultServiceConfig(cfg.serviceConfig))
	}
	grpcRetries := cfg.deadline.perAttempt == 0 && cfg.res.hedging == nil
	if !grpcRetries {
		// greeter's own attempts take the place of grpc's retries: see
		// WithPerAttemptTimeout and WithHedging.
		dopts = append(dopts, grpc.WithDisableRetry())
	}
	dopts = append(dopts, clientTransportOptions(cfg)...)
	dopts = append(dopts, cfg.dialOpts...)
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		if cfg.tls == nil && !cfg.insecure {
			return nil, fmt.Errorf("greeter: NewClient(%q): %w (choose transport security with WithTLS or WithInsecure)", target, err)
		}
		return nil, fmt.Errorf("greeter: NewClient(%q): %w", target, err)
	}
	prefix := "/" + cfg.service + "/"
	return &Client{
		conn:          conn,
		timeout:       cfg.timeout,
		deadline:      cfg.deadline,
		grpcRetries:   grpcRetries,
		sayHello:      prefix + "SayHello",
		sayHelloAgain: prefix + "SayHelloAgain",
		streamReply:   prefix + "SayHelloStreamReply",
		bidi:          prefix + "SayHelloBidiStream",
	}, nil
}

// SayHello greets name and returns the server's reply, "Hello, NAME!" from
// a greeter server. Errors carry a gRPC status: status.Code(err) tells
// DeadlineExceeded when the deadline passed, Canceled when ctx was
// cancelled, Unavailable when no server could be reached, and the server's
// own code otherwise: InvalidArgument for an empty name or one longer than
// [MaxNameLength]. DeadlineExceeded and Canceled come as a
// [*DeadlineError] that explains which budget ran out and where.
// docs/errors.md lists every code.
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

// explainUnimplemented rewrites a server's terse Unimplemented ("Method not
// found!" from grpcio) into a message that names the method and the usual
// cause; the code stays Unimplemented.
func explainUnimplemented(err error, method string) error {
	if _, ok := err.(*DeadlineError); ok {
		// Already explained; status.FromError would format its message,
		// which a caller that only checks the code need not pay for.
		return err
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unimplemented {
		return err
	}
	return status.Errorf(codes.Unimplemented,
		"server does not implement %s (servers built from the classic helloworld.proto have only SayHello; check the service name too): %s",
		method, st.Message())
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
func (c *Client) Close() error { return c.conn.Close() }
