package greeter_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/tap"
)

// wireBytes is a stats handler that adds up the message bytes on the wire
// (after compression, with gRPC's 5-byte message prefix) each way.
type wireBytes struct {
	mu      sync.Mutex
	out, in int
}

func (w *wireBytes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (w *wireBytes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (w *wireBytes) HandleConn(context.Context, stats.ConnStats)                       {}
func (w *wireBytes) HandleRPC(_ context.Context, s stats.RPCStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s := s.(type) {
	case *stats.OutPayload:
		w.out += s.WireLength
	case *stats.InPayload:
		w.in += s.WireLength
	}
}

func (w *wireBytes) take() (out, in int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out, in = w.out, w.in
	w.out, w.in = 0, 0
	return out, in
}

func TestCompressionShrinksWireBytes(t *testing.T) {
	name := strings.Repeat("greeter ", greeter.MaxNameLength/8) // large and repetitive
	ctx := testContext(t)
	measure := func(t *testing.T, serverOpts []greeter.ServerOption, clientOpts []greeter.ClientOption, callOpts ...grpc.CallOption) (out, in int) {
		t.Helper()
		var w wireBytes
		c := newClient(t, newServer(t, serverOpts...), append(clientOpts, greeter.WithDialOptions(grpc.WithStatsHandler(&w)))...)
		got, err := c.SayHello(ctx, name, callOpts...)
		if err != nil || got != "Hello, "+name+"!" {
			t.Fatalf("SayHello = %.20q..., %v", got, err)
		}
		return w.take()
	}
	plainOut, plainIn := measure(t, nil, nil)
	if plainOut < len(name) || plainIn < len(name) {
		t.Fatalf("uncompressed wire bytes out %d, in %d: less than the name (%d bytes)?", plainOut, plainIn, len(name))
	}
	tests := []struct {
		name                     string
		server                   []greeter.ServerOption
		client                   []greeter.ClientOption
		call                     []grpc.CallOption
		requestSmall, replySmall bool
	}{
		// The server answers a compressed request in kind.
		{name: "per call", call: []grpc.CallOption{grpc.UseCompressor(greeter.Gzip)}, requestSmall: true, replySmall: true},
		{name: "client default", client: []greeter.ClientOption{greeter.WithCompressor(greeter.Gzip)}, requestSmall: true, replySmall: true},
		// A server with WithCompressor compresses replies to plain requests.
		{name: "server default", server: []greeter.ServerOption{greeter.WithCompressor(greeter.Gzip)}, replySmall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, in := measure(t, tt.server, tt.client, tt.call...)
			t.Logf("wire bytes: request %d (uncompressed %d), reply %d (uncompressed %d)", out, plainOut, in, plainIn)
			if small := out < plainOut/4; small != tt.requestSmall {
				t.Errorf("request: %d wire bytes against %d uncompressed; want compressed: %v", out, plainOut, tt.requestSmall)
			}
			if small := in < plainIn/4; small != tt.replySmall {
				t.Errorf("reply: %d wire bytes against %d uncompressed; want compressed: %v", in, plainIn, tt.replySmall)
			}
		})
	}
}

func TestCompressorValidates(t *testing.T) {
	if _, err := greeter.NewServer(greeter.WithCompressor("no-such-codec")); err == nil {
		t.Error("NewServer accepted an unregistered compressor")
	}
	if c, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithCompressor("no-such-codec")); err == nil {
		c.Close()
		t.Error("NewClient accepted an unregistered compressor")
	}
}

// wireSizes records the size of each response on the wire and decoded.
type wireSizes struct {
	mu          sync.Mutex
	wire, plain int
}

func (w *wireSizes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireSizes) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok && p.IsClient() {
		w.mu.Lock()
		w.wire, w.plain = p.WireLength, p.Length
		w.mu.Unlock()
	}
}
func (w *wireSizes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (w *wireSizes) HandleConn(context.Context, stats.ConnStats)                       {}

// Request ids do not turn the server's compression off.
func TestCompressorWithRequestID(t *testing.T) {
	var sizes wireSizes
	c := newClient(t, newServer(t, greeter.WithCompressor(greeter.Gzip), greeter.WithRequestID()),
		greeter.WithDialOptions(grpc.WithStatsHandler(&sizes)))
	if _, err := c.SayHello(testContext(t), strings.Repeat("a", greeter.MaxNameLength)); err != nil {
		t.Fatal(err)
	}
	sizes.mu.Lock()
	defer sizes.mu.Unlock()
	if sizes.wire >= sizes.plain/2 {
		t.Errorf("the reply took %d bytes on the wire for %d decoded; want it compressed", sizes.wire, sizes.plain)
	}
}

// A raw tap handle that grpc would refuse with a panic is an error.
func TestRawTapHandleConflictIsAnError(t *testing.T) {
	tapOpt := grpc.InTapHandle(func(ctx context.Context, _ *tap.Info) (context.Context, error) { return ctx, nil })
	_, err := greeter.NewServer(greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: time.Second}), greeter.WithGRPCServerOptions(tapOpt))
	if err == nil || !strings.Contains(err.Error(), "InTapHandle") {
		t.Errorf("NewServer with a raw InTapHandle and a cap = %v; want an error naming the conflict", err)
	}
	srv, err := greeter.NewServer(greeter.WithGRPCServerOptions(tapOpt)) // no policy: no tap of greeter's
	if err != nil {
		t.Fatalf("NewServer with a raw InTapHandle alone = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = srv.Shutdown(ctx)
}
