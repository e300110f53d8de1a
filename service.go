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
	// Register on someone else's grpc.Server too. They are bound to each
	// method once, at registration, so that a call allocates nothing for
	// them (see bindUnary).
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
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
		unary:  serviceUnaryInterceptors(cfg),
		stream: serviceStreamInterceptors(cfg),
	}
	for _, name := range []string{ServiceName, HelloworldServiceName} {
		r.RegisterService(serviceDesc(name, s), s)
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

func serviceDesc(name string, s *service) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*greeterpb.GreeterServer)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "SayHello", Handler: s.unaryHandler("/"+name+"/SayHello", (*service).SayHello)},
			{MethodName: "SayHelloAgain", Handler: s.unaryHandler("/"+name+"/SayHelloAgain", (*service).SayHelloAgain)},
		},
		Streams: []grpc.StreamDesc{
			{
				StreamName:    "SayHelloStreamReply",
				ServerStreams: true,
				Handler: s.streamHandler("/"+name+"/SayHelloStreamReply", true, false, func(s *service, stream grpc.ServerStream) error {
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
				Handler: s.streamHandler("/"+name+"/SayHelloBidiStream", true, true, func(s *service, stream grpc.ServerStream) error {
					return s.SayHelloBidiStream(&grpc.GenericServerStream[greeterpb.HelloRequest, greeterpb.HelloReply]{ServerStream: stream})
				}),
			},
		},
		Metadata: "greeter.proto",
	}
}

type unaryMethod func(*service, context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)

// unaryHandler is the grpc.MethodHandler of one unary method. Its info and
// the handler wrapped in the service's interceptors are built here, once, so
// that a call allocates only its request, as generated code does.
func (s *service) unaryHandler(fullMethod string, m unaryMethod) grpc.MethodHandler {
	// Shared by every call: interceptors read info, they do not change it.
	info := &grpc.UnaryServerInfo{Server: s, FullMethod: fullMethod}
	handler := bindUnary(s.unary, info, func(ctx context.Context, req any) (any, error) {
		return m(s, ctx, req.(*greeterpb.HelloRequest))
	})
	return func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(greeterpb.HelloRequest)
		if err := dec(req); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return handler(ctx, req)
		}
		return interceptor(ctx, req, info, handler)
	}
}

// streamHandler is unaryHandler for a streaming method.
func (s *service) streamHandler(fullMethod string, serverStreams, clientStreams bool, m func(*service, grpc.ServerStream) error) grpc.StreamHandler {
	info := &grpc.StreamServerInfo{FullMethod: fullMethod, IsServerStream: serverStreams, IsClientStream: clientStreams}
	return bindStream(s.stream, info, func(_ any, stream grpc.ServerStream) error {
		return m(s, stream)
	})
}

// bindUnary wraps h in is, the first outermost, as grpc.ChainUnaryInterceptor
// does for a whole server, but for one method whose info is known: the chain
// is built once instead of on every call.
func bindUnary(is []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) grpc.UnaryHandler {
	for i := len(is) - 1; i >= 0; i-- {
		next, in := h, is[i]
		h = func(ctx context.Context, req any) (any, error) { return in(ctx, req, info, next) }
	}
	return h
}

// bindStream is bindUnary for stream interceptors.
func bindStream(is []grpc.StreamServerInterceptor, info *grpc.StreamServerInfo, h grpc.StreamHandler) grpc.StreamHandler {
	for i := len(is) - 1; i >= 0; i-- {
		next, in := h, is[i]
		h = func(srv any, ss grpc.ServerStream) error { return in(srv, ss, info, next) }
	}
	return h
}
