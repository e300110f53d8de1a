package greeter_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greetertest"
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

// Call a Greeter server. Here the server runs in process; a real program
// would pass its address, such as "localhost:50051".
func ExampleNewClient() {
	srv, err := greetertest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c, err := srv.Client() // greeter.NewClient("localhost:50051", greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}

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

// Test against a real server in process, over bufconn: no port, no sleep.
// In a test, greetertest.NewClient(t) does all of this in one call and
// closes everything with t.Cleanup.
func Example_inProcess() {
	srv, err := greetertest.NewServer(greeter.WithStreamReplies(2))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close() // also closes the clients it made

	c, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}
	stream, err := c.SayHelloStreamReply(context.Background(), "tester")
	if err != nil {
		log.Fatal(err)
	}
	for {
		reply, err := stream.Recv()
		if err != nil {
			break // io.EOF at the end of the stream
		}
		fmt.Println(reply.GetMessage())
	}
	// Output:
	// Hello, tester! (1/2)
	// Hello, tester! (2/2)
}

// A caller's deadline bounds the whole call. When the server is too slow,
// the call fails with DeadlineExceeded once the deadline passes, and the
// handler's context ends too, so the server stops working for nobody.
func Example_deadline() {
	slow := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case <-time.After(time.Second): // simulated slow work
			return h(ctx, req)
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	srv, err := greetertest.NewServer(greeter.WithUnaryServerInterceptor(slow))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c, err := srv.Client()
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.SayHello(ctx, "you")
	fmt.Println(status.Code(err) == codes.DeadlineExceeded)
	// Output: true
}

// Add the Greeter to a grpc.Server the program already runs.
func ExampleRegister() {
	gs := grpc.NewServer()
	if err := greeter.Register(gs); err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{greeter.ServiceName, greeter.HelloworldServiceName} {
		_, ok := gs.GetServiceInfo()[name]
		fmt.Println(name, ok)
	}
	// Output:
	// Greeter true
	// helloworld.Greeter true
}
