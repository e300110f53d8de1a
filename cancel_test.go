package greeter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// cancelBound is how soon a client's cancel must reach the handler: it
// travels as one RST_STREAM frame, so this is slack for a loaded machine.
const cancelBound = time.Second

func TestCancelReachesHandler(t *testing.T) {
	tests := []struct {
		name string
		// call starts the call and returns a function that waits for its
		// outcome at the client.
		call func(ctx context.Context, c *greeter.Client) func() error
	}{
		{"unary", func(ctx context.Context, c *greeter.Client) func() error {
			done := make(chan error, 1)
			go func() {
				_, err := c.SayHello(ctx, "unary")
				done <- err
			}()
			return func() error { return <-done }
		}},
		{"server stream", func(ctx context.Context, c *greeter.Client) func() error {
			stream, err := c.SayHelloStreamReply(ctx, "server stream")
			if err != nil {
				return func() error { return err }
			}
			return func() error { _, err := stream.Recv(); return err }
		}},
		{"bidi stream", func(ctx context.Context, c *greeter.Client) func() error {
			stream, err := c.SayHelloBidiStream(ctx)
			if err != nil {
				return func() error { return err }
			}
			return func() error { _, err := stream.Recv(); return err }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			handlerErr := make(chan error, 1)
			block := func(ctx context.Context) error {
				started <- struct{}{}
				<-ctx.Done() // a handler busy until cancelled
				handlerErr <- ctx.Err()
				return status.FromContextError(ctx.Err()).Err()
			}
			srv := newServer(t,
				greeter.WithUnaryServerInterceptor(func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
					return nil, block(ctx)
				}),
				greeter.WithStreamServerInterceptor(func(_ any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, _ grpc.StreamHandler) error {
					return block(ss.Context())
				}))
			c := newClient(t, srv)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()

			wait := tt.call(ctx, c)
			<-started
			cancel()
			cancelled := time.Now()
			if err := wait(); status.Code(err) != codes.Canceled {
				t.Fatalf("client got %v, want Canceled", err)
			}
			select {
			case err := <-handlerErr:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("handler context ended with %v, want context.Canceled", err)
				}
				if d := time.Since(cancelled); d > cancelBound {
					t.Fatalf("cancel reached the handler after %v, want within %v", d, cancelBound)
				}
			case <-time.After(cancelBound):
				t.Fatalf("cancel did not reach the handler within %v", cancelBound)
			}
		})
	}
}
