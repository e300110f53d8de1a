package greeter_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Serve the Greeter on a TCP port, call it, and shut down gracefully.
func ExampleNewServer() {
	srv, err := greeter.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0") // port 0: any free port
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	c, err := greeter.NewClient(lis.Addr().String(), greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	msg, err := c.SayHello(context.Background(), "you")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg)

	// Shutdown lets in-flight calls finish, but waits no longer than ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	// Output: Hello, you!
}

// Call a Greeter server.
func ExampleNewClient() {
	addr, stop := serve()
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure()) // addr: "localhost:50051", say
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Every call gets a deadline: the caller's, or greeter.DefaultTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, err := c.SayHello(ctx, "you")
	if err != nil {
		log.Fatalf("SayHello: %v (code %s)", err, status.Code(err))
	}
	fmt.Println(msg)
	msg, err = c.SayHelloAgain(ctx, "you")
	if err != nil {
		log.Fatalf("SayHelloAgain: %v", err)
	}
	fmt.Println(msg)
	// Output:
	// Hello, you!
	// Hello again, you!
}

// Serve your own implementation of the Greeter, with greeter's deadline
// policy around it: here every call gets at most 50ms on this server, and
// the handler does its work or stops when its context ends, as grpc-go's
// own deadline example does.
func ExampleWithHandler() {
	addr, stop := serve(
		greeter.WithHandler(slowGreeter{work: time.Second}),
		greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: 50 * time.Millisecond}),
	)
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.SayHello(context.Background(), "you")
	var de *greeter.DeadlineError
	if errors.As(err, &de) {
		fmt.Println(status.Code(err), "from the", de.Source)
	}
	// Output: DeadlineExceeded from the server's cap
}

// slowGreeter is an importer's Greeter: its work takes a while, and it
// stops working the moment its caller's budget runs out.
type slowGreeter struct {
	greeterpb.UnimplementedGreeterServer
	work time.Duration
}

func (g slowGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	select {
	case <-time.After(g.work):
		return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// A caller's deadline bounds the whole call. When the server is too slow,
// the call fails with DeadlineExceeded once the deadline passes, and the
// handler's context ends too, so the server stops working for nobody.
func Example_deadline() {
	addr, stop := serve(greeter.WithHandler(slowGreeter{work: time.Second}))
	defer stop()
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.SayHello(ctx, "you")
	fmt.Println(status.Code(err) == codes.DeadlineExceeded)
	// Output: true
}

// Add the Greeter to a grpc.Server the program already runs. Register
// refuses, with an error and before registering anything, a name the
// server already serves; WithServiceNames picks the names to serve.
func ExampleRegister() {
	gs := grpc.NewServer()
	// The program serves the Greeter under upstream's name already.
	if err := greeter.Register(gs, greeter.WithServiceNames(greeter.HelloworldServiceName)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeter.Register(gs)) // both names, by default
	fmt.Println(greeter.Register(gs, greeter.WithServiceNames(greeter.ServiceName)))
	// Output:
	// greeter: Register: the server already serves helloworld.Greeter; serve the Greeter under the other name with WithServiceNames
	// <nil>
}

// serve starts a greeter server built with opts on 127.0.0.1 and returns
// its address and a function that shuts it down, as ExampleNewServer does
// step by step. In tests, greetertest runs one in process instead:
// greetertest.NewClient(t) is one call.
func serve(opts ...greeter.ServerOption) (addr string, stop func()) {
	srv, err := greeter.NewServer(opts...)
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	return lis.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Fatal(err)
		}
		if err := <-served; err != nil {
			log.Fatal(err)
		}
	}
}
