package greeter

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
)

// Gzip is the name of the gzip compressor, for [WithCompressor] and
// grpc.UseCompressor. Importing greeter registers it with grpc.
const Gzip = gzip.Name

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
	check := func(errs *[]error) bool {
		if encoding.GetCompressor(name) == nil {
			*errs = append(*errs, fmt.Errorf("greeter: WithCompressor(%q): no such compressor registered with grpc/encoding", name))
			return false
		}
		return true
	}
	return option{
		server: func(c *serverConfig) {
			if check(&c.res.errs) {
				c.res.compressor = name
			}
		},
		client: func(c *clientConfig) {
			if check(&c.res.errs) {
				c.res.compressor = name
			}
		},
	}
}

func setSendCompressor(ctx context.Context, name string) {
	if supported, err := grpc.ClientSupportedCompressors(ctx); err == nil && slices.Contains(supported, name) {
		// SetSendCompressor fails only for an unregistered name, which
		// WithCompressor ruled out.
		_ = grpc.SetSendCompressor(ctx, name)
	}
}

func sendCompressorUnary(name string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		setSendCompressor(ctx, name)
		return h(ctx, req)
	}
}

func sendCompressorStream(name string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		setSendCompressor(ss.Context(), name)
		return h(srv, ss)
	}
}
