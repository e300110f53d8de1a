package greeter

import (
	"context"
	"fmt"
	"io"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
)

// service implements the Greeter methods. Its ServiceDesc is built by hand
// (not taken from greeterpb) so that interceptors see the method name the
// caller used, /Greeter/... or /helloworld.Greeter/..., where the generated
// handlers would report /Greeter/... for both.
type service struct {
	greeterpb.UnimplementedGreeterServer
	cfg *serverConfig
	// unary and stream run inside any server-level interceptors, around
	// every Greeter handler, so that the service's own policies apply under
	// Register on someone else's grpc.Server too. Nil when there are none.
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
}

// serviceUnaryInterceptors lists the service's own unary policies,
// outermost first.
func serviceUnaryInterceptors(cfg *serverConfig) []grpc.UnaryServerInterceptor {
	var is []grpc.UnaryServerInterceptor
	if cfg.guard != nil {
		is = append(is, cfg.guard.unary)
	}
	is = append(is, faultUnaryInterceptors(cfg)...)
	return is
}

// serviceStreamInterceptors lists the service's own stream policies,
// outermost first.
func serviceStreamInterceptors(cfg *serverConfig) []grpc.StreamServerInterceptor {
	var is []grpc.StreamServerInterceptor
	if cfg.guard != nil {
		is = append(is, cfg.guard.stream)
	}
	is = append(is, faultStreamInterceptors(cfg)...)
	return is
}

func register(r grpc.ServiceRegistrar, cfg *serverConfig) {
	cfg.guard = newGuard(cfg)
	s := &service{
		cfg:    cfg,
		unary:  chainUnary(serviceUnaryInterceptors(cfg)),
		stream: chainStream(serviceStreamInterceptors(cfg)),
	}
	for _, name := range []string{ServiceName, HelloworldServiceName} {
		r.RegisterService(serviceDesc(name), s)
	}
}

func (s *service) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if err := validateName(req.GetName()); err != nil {
		return nil, err
	}
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}, nil
}

func (s *service) SayHelloAgain(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if err := validateName(req.GetName()); err != nil {
		return nil, err
	}
	return &greeterpb.HelloReply{Message: "Hello again, " + req.GetName() + "!"}, nil
}

func (s *service) SayHelloStreamReply(req *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	if err := validateName(req.GetName()); err != nil {
		return err
	}
	n := s.cfg.streamReplies
	for i := 1; i <= n; i++ {
		msg := fmt.Sprintf("Hello, %s! (%d/%d)", req.GetName(), i, n)
		if err := stream.Send(&greeterpb.HelloReply{Message: msg}); err != nil {
			return err
		}
	}
	return nil
}

func (s *service) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := validateName(req.GetName()); err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}); err != nil {
			return err
		}
	}
}

func serviceDesc(name string) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*greeterpb.GreeterServer)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "SayHello", Handler: unaryHandler("/"+name+"/SayHello", (*service).SayHello)},
			{MethodName: "SayHelloAgain", Handler: unaryHandler("/"+name+"/SayHelloAgain", (*service).SayHelloAgain)},
		},
		Streams: []grpc.StreamDesc{
			{
				StreamName:    "SayHelloStreamReply",
				ServerStreams: true,
				Handler: streamHandler("/"+name+"/SayHelloStreamReply", true, false, func(s *service, stream grpc.ServerStream) error {
					req := new(greeterpb.HelloRequest)
					if err := stream.RecvMsg(req); err != nil {
						return err
					}
					return s.SayHelloStreamReply(req, &grpc.GenericServerStream[greeterpb.HelloRequest, greeterpb.HelloReply]{ServerStream: stream})
				}),
			},
			{
				StreamName:    "SayHelloBidiStream",
				ServerStreams: true,
				ClientStreams: true,
				Handler: streamHandler("/"+name+"/SayHelloBidiStream", true, true, func(s *service, stream grpc.ServerStream) error {
					return s.SayHelloBidiStream(&grpc.GenericServerStream[greeterpb.HelloRequest, greeterpb.HelloReply]{ServerStream: stream})
				}),
			},
		},
		Metadata: "greeter.proto",
	}
}

type unaryMethod func(*service, context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)

func unaryHandler(fullMethod string, m unaryMethod) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(greeterpb.HelloRequest)
		if err := dec(req); err != nil {
			return nil, err
		}
		s := srv.(*service)
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}
		handler := func(ctx context.Context, req any) (any, error) {
			return m(s, ctx, req.(*greeterpb.HelloRequest))
		}
		if s.unary != nil {
			inner := handler
			handler = func(ctx context.Context, req any) (any, error) {
				return s.unary(ctx, req, info, inner)
			}
		}
		if interceptor == nil {
			return handler(ctx, req)
		}
		return interceptor(ctx, req, info, handler)
	}
}

func streamHandler(fullMethod string, serverStreams, clientStreams bool, m func(*service, grpc.ServerStream) error) grpc.StreamHandler {
	info := &grpc.StreamServerInfo{FullMethod: fullMethod, IsServerStream: serverStreams, IsClientStream: clientStreams}
	return func(srv any, stream grpc.ServerStream) error {
		s := srv.(*service)
		if s.stream == nil {
			return m(s, stream)
		}
		return s.stream(srv, stream, info, func(_ any, stream grpc.ServerStream) error {
			return m(s, stream)
		})
	}
}

// chainUnary folds interceptors into one, the first outermost, as
// grpc.ChainUnaryInterceptor does for a whole server; nil when empty.
func chainUnary(is []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if len(is) == 0 {
		return nil
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		for i := len(is) - 1; i > 0; i-- {
			next, in := h, is[i]
			h = func(ctx context.Context, req any) (any, error) { return in(ctx, req, info, next) }
		}
		return is[0](ctx, req, info, h)
	}
}

// chainStream is chainUnary for stream interceptors.
func chainStream(is []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	if len(is) == 0 {
		return nil
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		for i := len(is) - 1; i > 0; i-- {
			next, in := h, is[i]
			h = func(srv any, ss grpc.ServerStream) error { return in(srv, ss, info, next) }
		}
		return is[0](srv, ss, info, h)
	}
}
