package greeter

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// previousAttemptsHeader is the header in which grpc's retries (and
// greeter's hedging) tell the server how many attempts of this call came
// before; absent on a first attempt.
const previousAttemptsHeader = "grpc-previous-rpc-attempts"

// WithFailFirst injects a fault for testing retries: the server fails the
// first n attempts of every call to the Greeter service with UNAVAILABLE, and
// serves the attempt after. Attempts are told apart by the
// grpc-previous-rpc-attempts header that grpc's retries and greeter's
// hedging send, so a client that does not retry gets UNAVAILABLE on every
// call. The default, 0, injects nothing and costs nothing; n must not be
// negative. It applies under [Register] too.
func WithFailFirst(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if n < 0 {
			c.res.errs = append(c.res.errs, fmt.Errorf("greeter: WithFailFirst(%d): must not be negative", n))
			return
		}
		c.res.failFirst = n
	})
}

// faultUnaryInterceptors returns the fault-injection policy for the service
// chain, or nothing when no fault was asked for.
func faultUnaryInterceptors(cfg *serverConfig) []grpc.UnaryServerInterceptor {
	n := cfg.res.failFirst
	if n == 0 {
		return nil
	}
	return []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := injectedFault(ctx, n); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}}
}

func faultStreamInterceptors(cfg *serverConfig) []grpc.StreamServerInterceptor {
	n := cfg.res.failFirst
	if n == 0 {
		return nil
	}
	return []grpc.StreamServerInterceptor{func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := injectedFault(ss.Context(), n); err != nil {
			return err
		}
		return h(srv, ss)
	}}
}

func injectedFault(ctx context.Context, n int) error {
	attempt := previousAttempts(ctx)
	if attempt >= n {
		return nil
	}
	return status.Errorf(codes.Unavailable, "greeter: fault injected: attempt %d of the first %d fails", attempt+1, n)
}

// previousAttempts reads grpc-previous-rpc-attempts: 0 on a first attempt or
// when the header is missing or malformed.
func previousAttempts(ctx context.Context) int {
	v := metadata.ValueFromIncomingContext(ctx, previousAttemptsHeader)
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 0 {
		return 0
	}
	return n
}
