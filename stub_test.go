package greeter_test

import (
	"context"
	"io"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// stubGreeter is a Greeter handler for tests, served with
// greeter.WithHandler, in the manner of grpc-go's internal/stubserver: its
// unary methods run before, when set, then greet as the built-in handler
// does ("Hello, NAME!"); before's error ends the call instead. Its streams
// greet as the built-in ones do.
type stubGreeter struct {
	greeterpb.UnimplementedGreeterServer
	before func(ctx context.Context, method string) error
}

// handlerFunc serves a stubGreeter that runs before in each unary call.
func handlerFunc(before func(ctx context.Context, method string) error) greeter.ServerOption {
	return greeter.WithHandler(stubGreeter{before: before})
}

func (s stubGreeter) greet(ctx context.Context, req *greeterpb.HelloRequest, greeting string) (*greeterpb.HelloReply, error) {
	if s.before != nil {
		method, _ := grpc.Method(ctx)
		if err := s.before(ctx, method); err != nil {
			return nil, err
		}
	}
	return &greeterpb.HelloReply{Message: greeting + req.GetName() + "!"}, nil
}

func (s stubGreeter) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return s.greet(ctx, req, "Hello, ")
}

func (s stubGreeter) SayHelloAgain(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return s.greet(ctx, req, "Hello again, ")
}

func (stubGreeter) SayHelloStreamReply(req *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	for range greeter.DefaultStreamReplies {
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}); err != nil {
			return err
		}
	}
	return nil
}

func (stubGreeter) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}); err != nil {
			return err
		}
	}
}

// untilEnd is a before that works until the call's context ends, reporting
// each start on started when it is not nil.
func untilEnd(started chan<- string) func(ctx context.Context, method string) error {
	return func(ctx context.Context, method string) error {
		if started != nil {
			started <- method
		}
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
}
