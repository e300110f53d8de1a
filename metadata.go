package greeter

import (
	"context"

	"github.com/grpc-greeter/greeter/internal/requestid"
	"github.com/grpc-greeter/greeter/internal/wire"
)

// RequestIDHeader is the metadata key that carries a request id, both in the
// caller's request headers and in the response headers of a server built
// with [WithRequestID].
const RequestIDHeader = wire.RequestIDHeader

// RequestIDFromContext returns the request id of the call whose server
// context is ctx, and whether there is one: there is on a server built with
// [WithRequestID].
func RequestIDFromContext(ctx context.Context) (string, bool) {
	return requestid.FromContext(ctx)
}
