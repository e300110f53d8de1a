package greeter_test

import (
	"context"
	"fmt"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A server that fails the first two attempts of every call with
// UNAVAILABLE: the client's DefaultServiceConfig retries and succeeds.
func ExampleWithFailFirst() {
	addr, stop := serve(greeter.WithFailFirst(2))
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure()) // DefaultServiceConfig: up to 4 attempts on UNAVAILABLE
	if err != nil {
		panic(err)
	}
	defer c.Close()
	msg, err := c.SayHello(context.Background(), "retry")
	fmt.Println(msg, status.Code(err))

	// Without a retry policy, the injected failure reaches the caller.
	noRetry, err := greeter.NewClient(addr, greeter.WithInsecure(), greeter.WithServiceConfig(""))
	if err != nil {
		panic(err)
	}
	defer noRetry.Close()
	_, err = noRetry.SayHello(context.Background(), "once")
	fmt.Println(status.Code(err))
	// Output:
	// Hello, retry! OK
	// Unavailable
}

// Hedging sends a second copy of a call that has not answered within
// HedgingDelay, or at once when the first fails with a non-fatal code, and
// takes the first good answer.
func ExampleWithHedging() {
	addr, stop := serve(greeter.WithFailFirst(1))
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure(),
		greeter.WithServiceConfig(""), // no retries: the hedge does the work
		greeter.WithHedging(greeter.HedgingPolicy{
			MaxAttempts:         3,
			HedgingDelay:        100 * time.Millisecond,
			NonFatalStatusCodes: []codes.Code{codes.Unavailable},
		}))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	msg, err := c.SayHello(context.Background(), "hedge")
	fmt.Println(msg, status.Code(err))
	// Output: Hello, hedge! OK
}

// A request id sent by the caller reaches the handler's context and comes
// back in the response header.
func ExampleWithRequestID() {
	addr, stop := serve(greeter.WithRequestID(),
		greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			id, _ := greeter.RequestIDFromContext(ctx)
			fmt.Println("server sees", id)
			return h(ctx, req)
		}))
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), greeter.RequestIDHeader, "req-1")
	var header metadata.MD
	if _, err := c.SayHello(ctx, "id", grpc.Header(&header)); err != nil {
		panic(err)
	}
	fmt.Println("client gets", header.Get(greeter.RequestIDHeader))
	// Output:
	// server sees req-1
	// client gets [req-1]
}

// Compress every request with gzip; the server answers in kind. One call
// can ask instead with grpc.UseCompressor(greeter.Gzip).
func ExampleWithCompressor() {
	addr, stop := serve()
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure(), greeter.WithCompressor(greeter.Gzip))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	msg, err := c.SayHello(context.Background(), "gzip")
	fmt.Println(msg, err)
	// Output: Hello, gzip! <nil>
}

// An invalid name gets InvalidArgument with a BadRequest detail naming the
// field, which a client can show next to the input.
func ExampleMaxNameLength() {
	addr, stop := serve()
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = c.SayHello(context.Background(), "")
	st := status.Convert(err)
	fmt.Println(st.Code())
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fmt.Printf("%s: %s\n", v.GetField(), v.GetDescription())
			}
		}
	}
	// Output:
	// InvalidArgument
	// name: must not be empty
}

// Client-side health checking: calls go only to backends whose Greeter
// service is SERVING.
func ExampleServiceConfigWithHealthCheck() {
	sc, err := greeter.ServiceConfigWithHealthCheck("", greeter.ServiceName)
	if err != nil {
		panic(err)
	}
	c, err := greeter.NewClient("127.0.0.1:50051", greeter.WithInsecure(), greeter.WithServiceConfig(sc))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println("client ready; no connection is made until the first call")
	// Output: client ready; no connection is made until the first call
}
