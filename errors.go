package greeter

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxNameLength is the longest name, in bytes of UTF-8, that the Greeter
// service accepts. Longer names, and empty ones, get InvalidArgument with an
// errdetails.BadRequest field violation for "name".
const MaxNameLength = 1024

// validateName checks a request's name. It runs in the handlers themselves,
// not in an interceptor, so that it costs one length check per call and
// applies under [Register] too.
func validateName(name string) error {
	var desc string
	switch {
	case name == "":
		desc = "must not be empty"
	case len(name) > MaxNameLength:
		desc = fmt.Sprintf("must be at most %d bytes, got %d", MaxNameLength, len(name))
	default:
		return nil
	}
	st := status.New(codes.InvalidArgument, "greeter: invalid name: "+desc)
	if d, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "name", Description: desc}},
	}); err == nil {
		st = d
	}
	return st.Err()
}

// internalErrorMessage is all a caller learns of a panic: the panic value
// and stack go to the server's logger, never on the wire.
const internalErrorMessage = "greeter: internal error"

// WithoutRecovery turns off panic recovery, which [NewServer] installs by
// default as its outermost interceptor (go-grpc-middleware's recovery): a
// panic in a handler or in any interceptor then crashes the process instead
// of failing that one call with Internal and logging the panic with its
// stack at Error level. [Register] ignores it: the registrar's own server owns
// its interceptors.
func WithoutRecovery() ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.res.noRecovery = true })
}

func recoveryHandler(cfg *serverConfig) recovery.Option {
	logger := cfg.logger
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		logger.ErrorContext(ctx, "greeter: recovered from panic", "method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, internalErrorMessage)
	})
}

func recoveryUnary(cfg *serverConfig) grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(recoveryHandler(cfg))
}

func recoveryStream(cfg *serverConfig) grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(recoveryHandler(cfg))
}
