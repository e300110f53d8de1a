// Package fault injects failures into a server's calls, for testing a
// client's retries: the first n attempts of every call fail with
// UNAVAILABLE, the attempt after is served. Attempts are told apart by the
// grpc-previous-rpc-attempts header that grpc's retries send.
package fault

import (
	"context"

	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor fails the first n attempts of every unary call.
func UnaryServerInterceptor(n int) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := fail(ctx, n); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor fails the first n attempts of every stream.
func StreamServerInterceptor(n int) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := fail(ss.Context(), n); err != nil {
			return err
		}
		return h(srv, ss)
	}
}

func fail(ctx context.Context, n int) error {
	attempt := wire.PreviousAttempts(ctx)
	if attempt >= n {
		return nil
	}
	return status.Errorf(codes.Unavailable, "greeter: fault injected: attempt %d of the first %d fails", attempt+1, n)
}
