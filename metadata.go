package greeter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// RequestIDHeader is the metadata key that carries a request id, both in the
// caller's request headers and in the response headers of a server built
// with [WithRequestID].
const RequestIDHeader = "x-request-id"

// maxRequestIDLength bounds a request id taken from a caller; a longer or
// non-printable one is replaced with a generated id rather than echoed.
const maxRequestIDLength = 128

// WithRequestID gives every call a request id: the caller's own from the
// x-request-id header ([RequestIDHeader]) when it sends a usable one
// (printable ASCII, at most 128 bytes), otherwise one the server makes up.
// The id is put in the context that the handler and every interceptor given
// with [WithUnaryServerInterceptor] see, read it with [RequestIDFromContext],
// and sent back in the x-request-id response header (in the trailer when
// the call fails before any response, so that grpc can still retry it).
//
// It is off by default because it costs allocations on every call; a made-up
// id is cheap (a random per-server prefix and a counter, no entropy read
// per call) and unique per server, not unguessable. [Register] ignores it.
func WithRequestID() ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if c.res.requestIDs == nil {
			c.res.requestIDs = newRequestIDs()
		}
	})
}

type requestIDKey struct{}

// RequestIDFromContext returns the request id of the call whose server
// context is ctx, and whether there is one: there is on a server built with
// [WithRequestID].
func RequestIDFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok
}

// requestIDs makes request ids for one server.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (r *requestIDs) id(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(v) > 0 && usableRequestID(v[0]) {
		return v[0]
	}
	return r.prefix + strconv.FormatUint(r.n.Add(1), 16)
}

func usableRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// The id goes in the response header of a call that succeeds or has sent a
// message, and in the trailer of one that fails before any response: grpc
// retries only calls answered with trailers alone, and a header set up
// front would turn every failure into a non-retryable one.

func (r *requestIDs) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	id := r.id(ctx)
	resp, err := h(context.WithValue(ctx, requestIDKey{}, id), req)
	md := metadata.Pairs(RequestIDHeader, id)
	// Neither fails here: a unary call's headers are not yet sent.
	if err == nil {
		_ = grpc.SetHeader(ctx, md)
	} else {
		_ = grpc.SetTrailer(ctx, md)
	}
	return resp, err
}

func (r *requestIDs) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	id := r.id(ss.Context())
	w := &requestIDStream{
		// A new wrapper, not middleware.WrapServerStream, which would reuse
		// and change an outer interceptor's wrapper.
		WrappedServerStream: &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: context.WithValue(ss.Context(), requestIDKey{}, id)},
		md:                  metadata.Pairs(RequestIDHeader, id),
	}
	err := h(srv, w)
	if !w.headerSet {
		if err == nil {
			_ = ss.SetHeader(w.md)
		} else {
			ss.SetTrailer(w.md)
		}
	}
	return err
}

// requestIDStream adds the request id to the response header just before
// the header goes out with the first message.
type requestIDStream struct {
	*middleware.WrappedServerStream
	md        metadata.MD
	headerSet bool
}

func (s *requestIDStream) setHeader() {
	if !s.headerSet {
		s.headerSet = true
		_ = s.ServerStream.SetHeader(s.md)
	}
}

func (s *requestIDStream) SendHeader(md metadata.MD) error {
	s.setHeader()
	return s.ServerStream.SendHeader(md)
}

func (s *requestIDStream) SendMsg(m any) error {
	s.setHeader()
	return s.ServerStream.SendMsg(m)
}
