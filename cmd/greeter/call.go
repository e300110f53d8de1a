package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("call", "[flags]", stderr)
	addr := fs.String("addr", "localhost:50051", addrUsage)
	name := fs.String("name", "world", "name to greet")
	again := fs.Bool("again", false, "call SayHelloAgain instead of SayHello")
	timeout := fs.Duration("timeout", time.Second, "deadline for the call (0: none of ours; a unary call then gets the client's default of 10s, a --stream ends after 10s without a message)")
	service := fs.String("service", greeter.ServiceName, "service name to call: Greeter or helloworld.Greeter")
	var headers headerFlag
	fs.Var(&headers, "header", "request header `key=value`, repeatable (base64 value for keys ending in -bin)")
	verbose := fs.Bool("v", false, "print the response headers and trailers to stderr")
	compress := fs.String("compress", "", "compress the request with `codec` (gzip); the reply comes back compressed too")
	deadlines := addCallDeadlineFlags(fs)
	tlsFlags := addClientTLSFlags(fs)
	lb := addLBFlag(fs)
	token := fs.String("token", "", "send this bearer `token` with the call (authorization: Bearer TOKEN); needs TLS: it is never sent in plaintext")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *deadlines.attempts < 1 {
		fmt.Fprintf(stderr, "greeter call: --attempts %d: must be at least 1\n", *deadlines.attempts)
		return 2
	}
	transport, err := tlsFlags.option()
	if err != nil {
		fmt.Fprintf(stderr, "greeter call: %v\n", err)
		return 2
	}

	copts := append([]greeter.ClientOption{transport, greeter.WithServiceName(*service)}, deadlines.clientOptions()...)
	if *token != "" {
		if !tlsFlags.secure() {
			fmt.Fprintln(stderr, "greeter call: --token needs TLS (--tls, --tls-ca or --tls-cert): a bearer token is never sent in plaintext")
			return 2
		}
		copts = append(copts, greeter.WithBearerToken(*token))
	}
	if *compress != "" {
		copts = append(copts, greeter.WithCompressor(*compress))
	}
	copts = append(copts, lbOptions(*lb)...)
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
	if headers.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, headers.md)
	}
	var header, trailer metadata.MD
	callOpts := append(deadlines.callOptions(), grpc.Header(&header), grpc.Trailer(&trailer))
	var msg string
	if *deadlines.stream {
		err = streamCall(ctx, c, *name, callOpts, stdout)
	} else {
		msg, err = call(ctx, *name, callOpts...)
	}
	if *verbose {
		printMetadata(stderr, "header", header)
		printMetadata(stderr, "trailer", trailer)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", status.Code(err), errorText(err))
		return 1
	}
	if !*deadlines.stream {
		fmt.Fprintln(stdout, msg)
	}
	return 0
}

// addrUsage describes the --addr flag of the commands that call a server.
const addrUsage = "server `address`: any gRPC target, such as host:port, dns:///host:port, unix:/path/to/socket, greeter:///host:port,host:port (a list) or greeter://file/path (a file of addresses, watched)"

// errorText is what a person reads of a failed call's error: a
// DeadlineError's own text, which also says how long the call took and
// which budget ran out, else the status message.
func errorText(err error) string {
	if de := (*greeter.DeadlineError)(nil); errors.As(err, &de) {
		return de.Error()
	}
	return status.Convert(err).Message()
}
