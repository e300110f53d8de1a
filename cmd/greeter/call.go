package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc/status"
)

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("call", "[flags]", stderr)
	addr := fs.String("addr", "localhost:50051", "server `address` (any gRPC target)")
	name := fs.String("name", "world", "name to greet")
	again := fs.Bool("again", false, "call SayHelloAgain instead of SayHello")
	timeout := fs.Duration("timeout", time.Second, "deadline for the call (0: none of ours, the client's default of 10s applies)")
	service := fs.String("service", greeter.ServiceName, "service name to call: Greeter or helloworld.Greeter")
	deadlines := addCallDeadlineFlags(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}

	copts := append([]greeter.ClientOption{greeter.WithInsecure(), greeter.WithServiceName(*service)}, deadlines.clientOptions()...)
	c, err := greeter.NewClient(*addr, copts...)
	if err != nil {
		fmt.Fprintf(stderr, "greeter call: %v\n", err)
		return 2
	}
	defer c.Close()

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	call := c.SayHello
	if *again {
		call = c.SayHelloAgain
	}
	var msg string
	if *deadlines.stream {
		err = streamCall(ctx, c, *name, deadlines.callOptions(), stdout)
	} else {
		msg, err = call(ctx, *name, deadlines.callOptions()...)
	}
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(stderr, "%s: %s\n", st.Code(), st.Message())
		return 1
	}
	if !*deadlines.stream {
		fmt.Fprintln(stdout, msg)
	}
	return 0
}
