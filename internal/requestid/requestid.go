// Package requestid gives every call a request id: the caller's own from
// the x-request-id header when it is usable (printable ASCII, at most 128
// bytes), otherwise one made up by the server. The id is put in the
// handler's context ([FromContext]) and sent back in the x-request-id
// response header, or in the trailer when the call fails before any
// response, so that grpc can still retry it: grpc retries only calls
// answered with trailers alone.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// maxLength bounds a request id taken from a caller; a longer or
// non-printable one is replaced with a made-up id rather than echoed.
const maxLength = 128

type key struct{}

// FromContext returns the request id of the call whose server context is
// ctx, and whether there is one.
func FromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(key{}).(string)
	return id, ok
}

// Generator makes request ids for one server: a random per-server prefix
// and a counter, so unique per server and cheap, not unguessable.
type Generator struct {
	prefix string
	n      atomic.Uint64
}

// New returns a Generator with a fresh random prefix.
func New() *Generator {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &Generator{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *Generator) id(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, wire.RequestIDHeader); len(v) > 0 && usable(v[0]) {
		return v[0]
	}
	return g.prefix + strconv.FormatUint(g.n.Add(1), 16)
}

func usable(s string) bool {
	if s == "" || len(s) > maxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// UnaryServerInterceptor gives each unary call its id.
func (g *Generator) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id := g.id(ctx)
		ih := &idHeader{ServerTransportStream: grpc.ServerTransportStreamFromContext(ctx), md: metadata.Pairs(wire.RequestIDHeader, id)}
		hctx := grpc.NewContextWithServerTransportStream(context.WithValue(ctx, key{}, id), ih)
		resp, err := h(hctx, req)
		ih.finish(err)
		return resp, err
	}
}

// StreamServerInterceptor gives each stream its id.
func (g *Generator) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		id := g.id(ss.Context())
		ih := &idHeader{ServerTransportStream: grpc.ServerTransportStreamFromContext(ss.Context()), md: metadata.Pairs(wire.RequestIDHeader, id)}
		ctx := grpc.NewContextWithServerTransportStream(context.WithValue(ss.Context(), key{}, id), ih)
		// A new wrapper, not middleware.WrapServerStream, which would reuse
		// and change an outer interceptor's wrapper.
		w := &stream{WrappedServerStream: &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx}, ih: ih}
		err := h(srv, w)
		ih.finish(err)
		return err
	}
}

// idHeader puts the request id in the response header just before the
// header goes out, however the handler sends it: with its first message,
// with grpc.SendHeader on its context, or with the stream's SendHeader.
// A call that ends before any of these gets it in the header when it
// succeeds and in the trailer when it fails.
type idHeader struct {
	grpc.ServerTransportStream
	md   metadata.MD
	sent atomic.Bool
}

// stage adds the id to the header, once, before the header is sent.
func (h *idHeader) stage() {
	if h.sent.CompareAndSwap(false, true) && h.ServerTransportStream != nil {
		_ = h.ServerTransportStream.SetHeader(h.md) // the header is not sent yet
	}
}

func (h *idHeader) SendHeader(md metadata.MD) error {
	h.stage()
	return h.ServerTransportStream.SendHeader(md)
}

// finish sends the id with a call's end when no header went out: in the
// header of a success, in the trailer of a failure (a header would turn
// grpc's trailers-only failure into one it does not retry).
func (h *idHeader) finish(err error) {
	if h.ServerTransportStream == nil || !h.sent.CompareAndSwap(false, true) {
		return
	}
	if err == nil {
		_ = h.ServerTransportStream.SetHeader(h.md)
	} else {
		_ = h.ServerTransportStream.SetTrailer(h.md)
	}
}

// stream stages the id before the stream's header goes out.
type stream struct {
	*middleware.WrappedServerStream
	ih *idHeader
}

func (s *stream) SendHeader(md metadata.MD) error {
	s.ih.stage()
	return s.ServerStream.SendHeader(md)
}

func (s *stream) SendMsg(m any) error {
	s.ih.stage()
	return s.ServerStream.SendMsg(m)
}
