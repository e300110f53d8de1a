package greeter

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"unicode/utf8"

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
	case !utf8.ValidString(name):
		desc = "must be valid UTF-8"
	default:
		return nil
	}
	return invalidName(desc)
}

// errNameNotUTF8 refuses a name that is not valid UTF-8.
var errNameNotUTF8 = invalidName("must be valid UTF-8")

// invalidName is InvalidArgument with a BadRequest field violation for
// "name" that says desc.
func invalidName(desc string) error {
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

// recoveryOption turns a panic into Internal with [internalErrorMessage],
// and logs it with its stack.
func recoveryOption(logger *slog.Logger) recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		logger.ErrorContext(ctx, "greeter: recovered from panic", "method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, internalErrorMessage)
	})
}

// explainUnimplemented rewrites a server's terse Unimplemented ("unknown
// service Greeter" from grpc-go, "Method not found!" from grpcio) into a
// message that names the method, the likely cause and the option that fixes
// it; the code stays Unimplemented.
func explainUnimplemented(err error, method string) error {
	if _, ok := err.(*DeadlineError); ok {
		// Already explained; status.FromError would format its message,
		// which a caller that only checks the code need not pay for.
		return err
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unimplemented {
		return err
	}
	service, name := splitMethod(method)
	other := HelloworldServiceName
	if service == HelloworldServiceName {
		other = ServiceName
	}
	serviceHint := fmt.Sprintf("the server may serve the Greeter as %s: use WithServiceName(%q), or greeter's --service %s", other, other, other)
	var why string
	switch msg := st.Message(); {
	case strings.Contains(msg, "unknown service"):
		why = fmt.Sprintf("the server has no service %s; %s", service, serviceHint)
	case strings.Contains(msg, "unknown method"):
		why = fmt.Sprintf("the server's %s has no %s: servers built from the classic helloworld.proto have only SayHello", service, name)
	case name == "SayHello":
		why = serviceHint
	default:
		why = fmt.Sprintf("servers built from the classic helloworld.proto have only SayHello; or %s", serviceHint)
	}
	return status.Errorf(codes.Unimplemented, "server does not implement %s (%s): %s", method, why, st.Message())
}

// splitMethod splits "/Greeter/SayHello" into "Greeter" and "SayHello".
func splitMethod(method string) (service, name string) {
	method = strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		return method[:i], method[i+1:]
	}
	return "", method
}
