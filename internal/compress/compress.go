// Package compress makes a server compress its responses with a named
// compressor for clients that accept it, also when their requests came
// uncompressed (grpc answers a compressed request in kind by itself).
package compress

import (
	"context"
	"slices"

	"google.golang.org/grpc"
)

// UnaryServerInterceptor compresses each unary response with name when
// the client accepts it. name must be registered with grpc/encoding.
func UnaryServerInterceptor(name string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		set(ctx, name)
		return h(ctx, req)
	}
}

// StreamServerInterceptor is [UnaryServerInterceptor] for streams.
func StreamServerInterceptor(name string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		set(ss.Context(), name)
		return h(srv, ss)
	}
}

func set(ctx context.Context, name string) {
	if supported, err := grpc.ClientSupportedCompressors(ctx); err == nil && slices.Contains(supported, name) {
		// SetSendCompressor fails only for an unregistered name.
		_ = grpc.SetSendCompressor(ctx, name)
	}
}
