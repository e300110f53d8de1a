// Command grpcgo-greeter is the Greeter server a plain grpc-go program
// writes, after grpc-go's examples/helloworld/greeter_server: the baseline
// that compare.sh sets greeter serve against. It serves until SIGINT or
// SIGTERM. With --tls-cert and --tls-key it serves TLS, as grpc-go's
// examples/features/encryption server does.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

type server struct {
	greeterpb.UnimplementedGreeterServer
}

func (server) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}, nil
}

func main() {
	addr := flag.String("addr", "localhost:50051", "`address` to listen on")
	certFile := flag.String("tls-cert", "", "serve TLS with this PEM certificate `file` (with --tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key `file` of --tls-cert")
	flag.Parse()
	var opts []grpc.ServerOption
	if *certFile != "" {
		// What grpc-go's examples/features/encryption server does.
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer(opts...)
	greeterpb.RegisterGreeterServer(s, server{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.GracefulStop()
	}()
	fmt.Printf("grpcgo-greeter: serving on %s\n", lis.Addr())
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
