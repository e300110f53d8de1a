package greeter

import "context"

// WithHandlerHook runs hook inside every guarded handler, before its work:
// tests use it to play a handler that ignores its context.
func WithHandlerHook(hook func(ctx context.Context, method string) error) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadline.on, c.deadline.hook = true, hook })
}
