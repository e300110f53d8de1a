package greeter

import "fmt"

// minWindowSize is HTTP/2's initial window; grpc ignores smaller windows.
const minWindowSize = 64 * 1024

// WithInitialWindowSize fixes the flow-control window of each stream this
// side receives on, in bytes: how much a peer may send on one call before it
// must wait for this side to read. By default grpc starts at 64KiB and
// grows the window as it measures the connection (BDP estimation), up to
// 16MiB. Setting a window turns that estimation off for this side. n must be
// at least 64KiB. A receiver that stops reading holds at most this much per
// stream: the sender's Send blocks instead of buffering without limit.
// [Register] ignores it.
func WithInitialWindowSize(n int32) Option {
	return windowOption("WithInitialWindowSize", n, func(r *serverResilience) { r.window = n }, func(r *clientResilience) { r.window = n })
}

// WithInitialConnWindowSize is [WithInitialWindowSize] for the whole
// connection, shared by all its streams. n must be at least 64KiB.
func WithInitialConnWindowSize(n int32) Option {
	return windowOption("WithInitialConnWindowSize", n, func(r *serverResilience) { r.connWindow = n }, func(r *clientResilience) { r.connWindow = n })
}

func windowOption(name string, n int32, server func(*serverResilience), client func(*clientResilience)) Option {
	var err error
	if n < minWindowSize {
		err = fmt.Errorf("greeter: %s(%d): must be at least %d (64KiB)", name, n, minWindowSize)
	}
	return option{
		server: func(c *serverConfig) {
			if err != nil {
				c.res.errs = append(c.res.errs, err)
				return
			}
			server(&c.res)
		},
		client: func(c *clientConfig) {
			if err != nil {
				c.res.errs = append(c.res.errs, err)
				return
			}
			client(&c.res)
		},
	}
}
