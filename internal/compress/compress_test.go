package compress_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/compress"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip" // registers gzip: grpc's clients in this test accept it
	"google.golang.org/grpc/stats"
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

// reply compresses well: what gzip makes of it is much smaller.
var reply = strings.Repeat("Hello, compressible world! ", 400)

type greeter struct {
	greeterpb.UnimplementedGreeterServer
}

func (greeter) SayHello(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: reply}, nil
}

func (greeter) SayHelloStreamReply(_ *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	for range 2 {
		if err := stream.Send(&greeterpb.HelloReply{Message: reply}); err != nil {
			return err
		}
	}
	return nil
}

// received records, on the client, how the server sent its response: the
// compression its header named, and each message's size before and after
// decompression.
type received struct {
	mu          sync.Mutex
	compression []string
	payloads    [][2]int // {compressed, uncompressed} lengths
}

func (r *received) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (r *received) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (r *received) HandleConn(context.Context, stats.ConnStats)                       {}

func (r *received) HandleRPC(_ context.Context, s stats.RPCStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch s := s.(type) {
	case *stats.InHeader:
		r.compression = append(r.compression, s.Compression)
	case *stats.InPayload:
		r.payloads = append(r.payloads, [2]int{s.CompressedLength, s.Length})
	}
}

// check fails the test unless the response came as wantGzip says: gzip
// named in its header and every message much smaller on the wire than it
// is, or neither.
func (r *received) check(t *testing.T, wantGzip bool, messages int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	want := ""
	if wantGzip {
		want = gzip.Name
	}
	if len(r.compression) != 1 || r.compression[0] != want {
		t.Errorf("response header's compression = %q, want [%q]", r.compression, want)
	}
	if len(r.payloads) != messages {
		t.Fatalf("received %d messages, want %d", len(r.payloads), messages)
	}
	for _, p := range r.payloads {
		if smaller := p[0] < p[1]/4; smaller != wantGzip {
			t.Errorf("a message of %d bytes came as %d bytes; want compressed: %v", p[1], p[0], wantGzip)
		}
	}
}

// serve runs the greeter with opts on a bufconn grpc server and returns
// a client that records what it receives in r; everything stops with the
// test.
func serve(t *testing.T, r *received, opts ...grpc.ServerOption) greeterpb.GreeterClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(opts...)
	greeterpb.RegisterGreeterServer(gs, greeter{})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(r))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return greeterpb.NewGreeterClient(cc)
}

func withCompressor(name string) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(compress.UnaryServerInterceptor(name)),
		grpc.ChainStreamInterceptor(compress.StreamServerInterceptor(name)),
	}
}

func TestUnary(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     []grpc.ServerOption
		wantGzip bool
	}{
		{"without the interceptor", nil, false}, // grpc's own default
		{"gzip", withCompressor(gzip.Name), true},
		{"unregistered name", withCompressor("no-such-compressor"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r received
			c := serve(t, &r, tt.opts...)
			got, err := c.SayHello(testContext(t), &greeterpb.HelloRequest{Name: "x"})
			if err != nil || got.GetMessage() != reply {
				t.Fatalf("SayHello = %d bytes, %v; want the whole reply", len(got.GetMessage()), err)
			}
			r.check(t, tt.wantGzip, 1)
		})
	}
}

func TestServerStream(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     []grpc.ServerOption
		wantGzip bool
	}{
		{"without the interceptor", nil, false},
		{"gzip", withCompressor(gzip.Name), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r received
			c := serve(t, &r, tt.opts...)
			stream, err := c.SayHelloStreamReply(testContext(t), &greeterpb.HelloRequest{Name: "x"})
			if err != nil {
				t.Fatalf("SayHelloStreamReply: %v", err)
			}
			n := 0
			for {
				got, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil || got.GetMessage() != reply {
					t.Fatalf("Recv after %d = %d bytes, %v; want the whole reply", n, len(got.GetMessage()), err)
				}
				n++
			}
			r.check(t, tt.wantGzip, 2)
		})
	}
}

func TestOutsideAServer(t *testing.T) {
	// Without a grpc server's context there is nothing to set: the
	// handler still runs.
	resp, err := compress.UnaryServerInterceptor(gzip.Name)(testContext(t), nil, &grpc.UnaryServerInfo{},
		func(ctx context.Context, _ any) (any, error) { return "ok", nil })
	if err != nil || resp != "ok" {
		t.Fatalf("interceptor = %v, %v; want the handler's ok", resp, err)
	}
}
