package greeter

import "context"

// WithHandlerHook runs hook inside every guarded handler, before its work:
// tests use it to play a handler that ignores its context.
func WithHandlerHook(hook func(ctx context.Context, method string) error) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadline.on, c.deadline.hook = true, hook })
}

// StreamWorkersPerCPU is the stream-worker default, for tests and
// benchmarks that match or outnumber it.
const StreamWorkersPerCPU = streamWorkersPerCPU
