package requestid_test

import (
	"context"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/fault"
	"github.com/grpc-greeter/greeter/internal/requestid"
	"github.com/grpc-greeter/greeter/internal/wire"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// defaultTestTimeout bounds every test's context.
const defaultTestTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// generated matches a made-up id: a per-server random prefix of 16 hex
// digits, a dash, a counter in hex.
var generated = regexp.MustCompile(`^([0-9a-f]{16}-)([0-9a-f]+)$`)

var hello = &greeterpb.HelloRequest{Name: "id"}

// stubGreeter is a Greeter server whose methods do what its fields say.
type stubGreeter struct {
	greeterpb.UnimplementedGreeterServer
	unary        func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)
	serverStream func(*greeterpb.HelloRequest, grpc.ServerStreamingServer[greeterpb.HelloReply]) error
}

func (s *stubGreeter) SayHello(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return s.unary(ctx, r)
}

func (s *stubGreeter) SayHelloStreamReply(r *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	return s.serverStream(r, stream)
}

// serve runs srv on a bufconn grpc server with the interceptors of a new
// Generator (and any more after them), and returns a client; everything
// stops with the test.
func serve(t *testing.T, srv *stubGreeter, more []grpc.UnaryServerInterceptor, dialOpts ...grpc.DialOption) greeterpb.GreeterClient {
	t.Helper()
	g := requestid.New()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{g.UnaryServerInterceptor()}, more...)...),
		grpc.ChainStreamInterceptor(g.StreamServerInterceptor()))
	greeterpb.RegisterGreeterServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := grpc.NewClient("passthrough:///bufnet", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, dialOpts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return greeterpb.NewGreeterClient(cc)
}

// idsSeen returns a unary handler that reports each call's
// requestid.FromContext on ids and answers with err (a reply if nil).
func idsSeen(ids chan<- string, err error) func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return func(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
		id, ok := requestid.FromContext(ctx)
		if !ok {
			id = "<none>"
		}
		ids <- id
		if err != nil {
			return nil, err
		}
		return &greeterpb.HelloReply{Message: "hi"}, nil
	}
}

// one returns md's only value of the request id header, or "" and false.
func one(md metadata.MD) (string, bool) {
	v := md.Get(wire.RequestIDHeader)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

func withID(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, wire.RequestIDHeader, id)
}

func TestCallersIDKept(t *testing.T) {
	ids := make(chan string, 1)
	c := serve(t, &stubGreeter{unary: idsSeen(ids, nil)}, nil)
	for _, id := range []string{
		"abc-123",
		"with spaces and ~!@#$%^&*() punctuation",
		strings.Repeat("x", 128), // the longest kept
	} {
		var header, trailer metadata.MD
		if _, err := c.SayHello(withID(testContext(t), id), hello, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := <-ids; got != id {
			t.Errorf("handler's FromContext = %q, want the caller's %q", got, id)
		}
		if got, ok := one(header); !ok || got != id {
			t.Errorf("response header %s = %q, want [%q]", wire.RequestIDHeader, header.Get(wire.RequestIDHeader), id)
		}
		if got := trailer.Get(wire.RequestIDHeader); len(got) != 0 {
			t.Errorf("trailer %s = %q on success, want none (it is in the header)", wire.RequestIDHeader, got)
		}
	}
}

func TestUnusableIDReplaced(t *testing.T) {
	ids := make(chan string, 1)
	c := serve(t, &stubGreeter{unary: idsSeen(ids, nil)}, nil)
	for _, tt := range []struct {
		name string
		ctx  func(context.Context) context.Context
	}{
		{"none", func(ctx context.Context) context.Context { return ctx }},
		{"empty", func(ctx context.Context) context.Context { return withID(ctx, "") }},
		{"too long", func(ctx context.Context) context.Context { return withID(ctx, strings.Repeat("x", 129)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var header metadata.MD
			if _, err := c.SayHello(tt.ctx(testContext(t)), hello, grpc.Header(&header)); err != nil {
				t.Fatalf("SayHello: %v", err)
			}
			id := <-ids
			if !generated.MatchString(id) {
				t.Errorf("handler's FromContext = %q, want a generated id", id)
			}
			if got, ok := one(header); !ok || got != id {
				t.Errorf("response header %s = %q, want [%q]", wire.RequestIDHeader, header.Get(wire.RequestIDHeader), id)
			}
		})
	}
}

func TestNonPrintableIDReplaced(t *testing.T) {
	// grpc's clients refuse to send such values: the interceptor is
	// called directly with the metadata a client in another language
	// could send.
	interceptor := requestid.New().UnaryServerInterceptor()
	for _, id := range []string{"a\x01b", "tab\there", "caf\xc3\xa9", "del\x7f"} {
		ctx := metadata.NewIncomingContext(testContext(t), metadata.Pairs(wire.RequestIDHeader, id))
		var got string
		_, err := interceptor(ctx, hello, &grpc.UnaryServerInfo{FullMethod: "/Greeter/SayHello"}, func(ctx context.Context, _ any) (any, error) {
			got, _ = requestid.FromContext(ctx)
			return "ok", nil
		})
		if err != nil {
			t.Fatalf("interceptor: %v", err)
		}
		if !generated.MatchString(got) {
			t.Errorf("caller's id %q: handler's FromContext = %q, want a generated id", id, got)
		}
	}
}

func TestGeneratedIDsPerServer(t *testing.T) {
	ids := make(chan string, 1)
	call := func(c greeterpb.GreeterClient) []string {
		if _, err := c.SayHello(testContext(t), hello); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		m := generated.FindStringSubmatch(<-ids)
		if m == nil {
			t.Fatalf("no generated id")
		}
		return m[1:]
	}
	a := serve(t, &stubGreeter{unary: idsSeen(ids, nil)}, nil)
	b := serve(t, &stubGreeter{unary: idsSeen(ids, nil)}, nil)
	a1, a2, b1 := call(a), call(a), call(b)
	if a1[0] != a2[0] {
		t.Errorf("one server's ids have prefixes %q and %q, want one prefix", a1[0], a2[0])
	}
	if a1[1] == a2[1] {
		t.Errorf("one server made the id %q twice", a1[0]+a1[1])
	}
	if a1[0] == b1[0] {
		t.Errorf("two servers share the prefix %q", a1[0])
	}
}

func TestNoIDOutsideACall(t *testing.T) {
	if id, ok := requestid.FromContext(context.Background()); ok || id != "" {
		t.Fatalf("FromContext(Background) = %q, %v; want \"\", false", id, ok)
	}
}

func TestFailureSendsIDInTrailer(t *testing.T) {
	ids := make(chan string, 1)
	c := serve(t, &stubGreeter{unary: idsSeen(ids, status.Error(codes.NotFound, "nobody here"))}, nil)
	var header, trailer metadata.MD
	_, err := c.SayHello(withID(testContext(t), "fail-1"), hello, grpc.Header(&header), grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("SayHello = %v, want the handler's NotFound", err)
	}
	if got := <-ids; got != "fail-1" {
		t.Errorf("handler's FromContext = %q, want fail-1", got)
	}
	if got, ok := one(trailer); !ok || got != "fail-1" {
		t.Errorf("trailer %s = %q, want [fail-1]", wire.RequestIDHeader, trailer.Get(wire.RequestIDHeader))
	}
	if got := header.Get(wire.RequestIDHeader); len(got) != 0 {
		t.Errorf("header %s = %q on failure, want none: the answer must be trailers only", wire.RequestIDHeader, got)
	}
}

func TestFailureStaysRetryable(t *testing.T) {
	// The point of the trailer: grpc retries a call answered with
	// trailers only. The first attempt fails, the second is served, and
	// both see the caller's id.
	ids := make(chan string, 2)
	const sc = `{"methodConfig": [{"name": [{"service": "Greeter"}], "retryPolicy": {
		"maxAttempts": 2, "initialBackoff": "0.001s", "maxBackoff": "0.001s", "backoffMultiplier": 1,
		"retryableStatusCodes": ["UNAVAILABLE"]}}]}`
	attempts := make(chan string, 2)
	seeAttempt := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, _ := requestid.FromContext(ctx)
		attempts <- id
		return h(ctx, req)
	}
	c := serve(t, &stubGreeter{unary: idsSeen(ids, nil)}, []grpc.UnaryServerInterceptor{seeAttempt, fault.UnaryServerInterceptor(1)},
		grpc.WithDefaultServiceConfig(sc))
	var header metadata.MD
	if _, err := c.SayHello(withID(testContext(t), "retry-1"), hello, grpc.Header(&header)); err != nil {
		t.Fatalf("SayHello with one retry: %v", err)
	}
	if len(attempts) != 2 {
		t.Fatalf("server saw %d attempts, want 2", len(attempts))
	}
	for range 2 {
		if got := <-attempts; got != "retry-1" {
			t.Errorf("attempt's FromContext = %q, want retry-1", got)
		}
	}
	if got, ok := one(header); !ok || got != "retry-1" {
		t.Errorf("header %s = %q, want [retry-1]", wire.RequestIDHeader, header.Get(wire.RequestIDHeader))
	}
}

// recvAll reads a server stream to its end: the replies, then its error
// (nil at io.EOF).
func recvAll(stream grpc.ServerStreamingClient[greeterpb.HelloReply]) (int, error) {
	n := 0
	for {
		_, err := stream.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func TestStream(t *testing.T) {
	fail := status.Error(codes.Aborted, "stream failed")
	for _, tt := range []struct {
		name        string
		sends       int
		ownHeader   bool // the handler sends its own header first
		err         error
		wantTrailer bool // the id comes in the trailer, not the header
	}{
		{name: "replies", sends: 2},
		{name: "no replies", sends: 0},
		{name: "own header", sends: 1, ownHeader: true},
		{name: "fails at once", sends: 0, err: fail, wantTrailer: true},
		{name: "fails after a reply", sends: 1, err: fail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ids := make(chan string, 1)
			c := serve(t, &stubGreeter{serverStream: func(_ *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
				id, _ := requestid.FromContext(stream.Context())
				ids <- id
				if tt.ownHeader {
					if err := stream.SendHeader(metadata.Pairs("x-own", "1")); err != nil {
						return err
					}
				}
				for range tt.sends {
					if err := stream.Send(&greeterpb.HelloReply{Message: "hi"}); err != nil {
						return err
					}
				}
				return tt.err
			}}, nil)
			stream, err := c.SayHelloStreamReply(withID(testContext(t), "stream-1"), hello)
			if err != nil {
				t.Fatalf("SayHelloStreamReply: %v", err)
			}
			n, err := recvAll(stream)
			if n != tt.sends || status.Code(err) != status.Code(tt.err) {
				t.Fatalf("stream = %d replies, %v; want %d, %v", n, err, tt.sends, tt.err)
			}
			if got := <-ids; got != "stream-1" {
				t.Errorf("handler's FromContext = %q, want stream-1", got)
			}
			header, err := stream.Header()
			if err != nil {
				t.Fatalf("Header: %v", err)
			}
			inHeader, inTrailer := header.Get(wire.RequestIDHeader), stream.Trailer().Get(wire.RequestIDHeader)
			wantHeader, wantTrailer := []string{"stream-1"}, []string(nil)
			if tt.wantTrailer {
				wantHeader, wantTrailer = wantTrailer, wantHeader
			}
			if !slices.Equal(inHeader, wantHeader) || !slices.Equal(inTrailer, wantTrailer) {
				t.Errorf("id in header %q, in trailer %q; want %q, %q", inHeader, inTrailer, wantHeader, wantTrailer)
			}
			if tt.ownHeader && len(header.Get("x-own")) != 1 {
				t.Errorf("header %v lost the handler's own x-own", header)
			}
		})
	}
}

func TestStreamGeneratesID(t *testing.T) {
	ids := make(chan string, 1)
	c := serve(t, &stubGreeter{serverStream: func(_ *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
		id, _ := requestid.FromContext(stream.Context())
		ids <- id
		return stream.Send(&greeterpb.HelloReply{})
	}}, nil)
	stream, err := c.SayHelloStreamReply(withID(testContext(t), strings.Repeat("y", 129)), hello)
	if err != nil {
		t.Fatalf("SayHelloStreamReply: %v", err)
	}
	if _, err := recvAll(stream); err != nil {
		t.Fatalf("stream: %v", err)
	}
	id := <-ids
	header, _ := stream.Header()
	if got, ok := one(header); !generated.MatchString(id) || !ok || got != id {
		t.Errorf("handler's id %q, header %q; want one generated id in both", id, header.Get(wire.RequestIDHeader))
	}
}

// A handler that sends its header itself, with grpc.SendHeader on its
// context, still sends the id in it.
func TestIDSentWhenHandlerSendsHeader(t *testing.T) {
	t.Run("unary", func(t *testing.T) {
		c := serve(t, &stubGreeter{unary: func(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
			if err := grpc.SendHeader(ctx, metadata.Pairs("x-own", "1")); err != nil {
				return nil, err
			}
			return &greeterpb.HelloReply{}, nil
		}}, nil)
		var header, trailer metadata.MD
		if _, err := c.SayHello(withID(testContext(t), "own-1"), hello, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
			t.Fatalf("SayHello: %v", err)
		}
		if got := append(header.Get(wire.RequestIDHeader), trailer.Get(wire.RequestIDHeader)...); len(got) != 1 || got[0] != "own-1" {
			t.Errorf("id in header %q, in trailer %q; want [own-1] in one of them", header.Get(wire.RequestIDHeader), trailer.Get(wire.RequestIDHeader))
		}
	})
	t.Run("stream", func(t *testing.T) {
		c := serve(t, &stubGreeter{serverStream: func(_ *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
			return grpc.SendHeader(stream.Context(), metadata.Pairs("x-own", "1"))
		}}, nil)
		stream, err := c.SayHelloStreamReply(withID(testContext(t), "own-2"), hello)
		if err != nil {
			t.Fatalf("SayHelloStreamReply: %v", err)
		}
		if _, err := recvAll(stream); err != nil {
			t.Fatalf("stream: %v", err)
		}
		header, _ := stream.Header()
		if got := append(header.Get(wire.RequestIDHeader), stream.Trailer().Get(wire.RequestIDHeader)...); len(got) != 1 || got[0] != "own-2" {
			t.Errorf("id in header %q, in trailer %q; want [own-2] in one of them", header.Get(wire.RequestIDHeader), stream.Trailer().Get(wire.RequestIDHeader))
		}
	})
}
