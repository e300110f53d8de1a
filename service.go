package greeter

import (
	"context"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/fault"
	"github.com/grpc-greeter/greeter/internal/guard"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// service is the Greeter as a server registers it: one handler, chosen at
// construction, and the service's own policies around it (the deadline
// guard, fault injection), which apply under [Register] on someone else's
// grpc.Server too.
type service struct {
	names   []string
	handler greeterpb.GreeterServer
	guard   *guard.Guard // nil without deadline options
	unary   []grpc.UnaryServerInterceptor
	stream  []grpc.StreamServerInterceptor
}

// newService builds the service cfg describes. The handler is the
// importer's ([WithHandler]), a relay ([WithUpstream]) or the built-in
// greeting, wrapped in simulated work when [WithDelay] asks for it.
func newService(cfg *serverConfig) *service {
	var h greeterpb.GreeterServer
	switch {
	case cfg.handlerSet:
		h = cfg.handler
	case cfg.upstreamSet:
		h = &relay{client: cfg.upstream, reserve: cfg.replyReserve, logger: cfg.logger}
	default:
		h = greeting{replies: cfg.streamReplies}
	}
	if cfg.delay > 0 {
		h = working{next: h, work: cfg.delay}
	}
	s := &service{names: cfg.names, handler: h}
	if cfg.deadlines {
		methods := make(map[string]guard.Policy, len(cfg.methods))
		for m, p := range cfg.methods {
			methods[m] = guard.Policy(p)
		}
		s.guard = guard.New(guard.Config{Services: cfg.names, Policy: guard.Policy(cfg.policy), Methods: methods, Grace: cfg.grace, Logger: cfg.logger, Metrics: cfg.metrics, Notes: cfg.observeConfig().Enabled()})
		s.unary = append(s.unary, s.guard.UnaryServerInterceptor())
		s.stream = append(s.stream, s.guard.StreamServerInterceptor())
	}
	if n := cfg.failFirst; n > 0 {
		s.unary = append(s.unary, fault.UnaryServerInterceptor(n))
		s.stream = append(s.stream, fault.StreamServerInterceptor(n))
	}
	return s
}

// register registers the service under each of its names, after checking
// that none is taken: grpc's RegisterService would end the process.
func (s *service) register(r grpc.ServiceRegistrar) error {
	if si, ok := r.(interface {
		GetServiceInfo() map[string]grpc.ServiceInfo
	}); ok {
		have := si.GetServiceInfo()
		for _, name := range s.names {
			if _, taken := have[name]; taken {
				return fmt.Errorf("greeter: Register: the server already serves %s; serve the Greeter under the other name with WithServiceNames", name)
			}
		}
	}
	for _, name := range s.names {
		r.RegisterService(s.desc(name), s.handler)
	}
	return nil
}

// desc is the service's ServiceDesc under name. It is built here, not taken
// from greeterpb, so that interceptors see the method name the caller used,
// /Greeter/... or /helloworld.Greeter/..., where the generated handlers
// would report /Greeter/... for both, and so that the service's policies
// are bound to each method once.
func (s *service) desc(name string) *grpc.ServiceDesc {
	h := s.handler
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*greeterpb.GreeterServer)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "SayHello", Handler: s.unaryHandler("/"+name+"/SayHello", h.SayHello)},
			{MethodName: "SayHelloAgain", Handler: s.unaryHandler("/"+name+"/SayHelloAgain", h.SayHelloAgain)},
		},
		Streams: []grpc.StreamDesc{
			{
				StreamName:    "SayHelloStreamReply",
				ServerStreams: true,
				Handler: s.streamHandler("/"+name+"/SayHelloStreamReply", true, false, func(stream grpc.ServerStream) error {
					req := new(greeterpb.HelloRequest)
					if err := stream.RecvMsg(req); err != nil {
						return err
					}
					if !utf8.ValidString(req.GetName()) {
						return errNameNotUTF8
					}
					return h.SayHelloStreamReply(req, &grpc.GenericServerStream[greeterpb.HelloRequest, greeterpb.HelloReply]{ServerStream: stream})
				}),
			},
			{
				StreamName:    "SayHelloBidiStream",
				ServerStreams: true,
				ClientStreams: true,
				Handler: s.streamHandler("/"+name+"/SayHelloBidiStream", true, true, func(stream grpc.ServerStream) error {
					return h.SayHelloBidiStream(&grpc.GenericServerStream[greeterpb.HelloRequest, greeterpb.HelloReply]{ServerStream: utf8Stream{stream}})
				}),
			},
		},
		Metadata: "greeter.proto",
	}
}

// unaryHandler is the grpc.MethodHandler of one unary method, with the
// service's policies bound to it once, so that a call allocates only its
// request, as generated code does.
func (s *service) unaryHandler(fullMethod string, m func(context.Context, *greeterpb.HelloRequest) (*greeterpb.HelloReply, error)) grpc.MethodHandler {
	// Shared by every call: interceptors read info, they do not change it.
	info := &grpc.UnaryServerInfo{Server: s.handler, FullMethod: fullMethod}
	handler := bindUnary(s.unary, info, func(ctx context.Context, req any) (any, error) {
		return m(ctx, req.(*greeterpb.HelloRequest))
	})
	return func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(greeterpb.HelloRequest)
		if err := dec(req); err != nil {
			return nil, err
		}
		if !utf8.ValidString(req.GetName()) {
			return nil, errNameNotUTF8
		}
		if interceptor == nil {
			return handler(ctx, req)
		}
		return interceptor(ctx, req, info, handler)
	}
}

// streamHandler is unaryHandler for a streaming method.
func (s *service) streamHandler(fullMethod string, serverStreams, clientStreams bool, m func(grpc.ServerStream) error) grpc.StreamHandler {
	info := &grpc.StreamServerInfo{FullMethod: fullMethod, IsServerStream: serverStreams, IsClientStream: clientStreams}
	return bindStream(s.stream, info, func(_ any, stream grpc.ServerStream) error { return m(stream) })
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

// utf8Stream refuses, as the unary methods do, a request whose name is not
// valid UTF-8, before any handler sees it.
type utf8Stream struct{ grpc.ServerStream }

func (s utf8Stream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if req, ok := m.(*greeterpb.HelloRequest); ok && !utf8.ValidString(req.GetName()) {
		return errNameNotUTF8
	}
	return nil
}

// requestCodec is grpc's proto codec, except that a HelloRequest whose
// name is not valid UTF-8 decodes, where proto3 refuses it and grpc answers
// Internal: the service's methods then answer InvalidArgument, the
// caller's mistake, with a field violation, before any handler sees the
// name. Everything else decodes as with grpc's own codec.
type requestCodec struct{ encoding.CodecV2 }

func (c requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if req, ok := v.(*greeterpb.HelloRequest); ok && err != nil {
		if name, ok := rawName(data.Materialize()); ok {
			req.Reset()
			req.Name = name
			return nil
		}
	}
	return err
}

// rawName reads field 1 of a HelloRequest's wire bytes as it is, UTF-8 or
// not; false when the bytes are not a well-formed message.
func rawName(b []byte) (string, bool) {
	var name string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", false
			}
			name, b = string(v), b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return name, true
}

// greeting is the built-in Greeter: "Hello, NAME!".
type greeting struct {
	greeterpb.UnimplementedGreeterServer
	replies int // per SayHelloStreamReply
}

func (greeting) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if err := validateName(req.GetName()); err != nil {
		return nil, err
	}
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}, nil
}

func (greeting) SayHelloAgain(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if err := validateName(req.GetName()); err != nil {
		return nil, err
	}
	return &greeterpb.HelloReply{Message: "Hello again, " + req.GetName() + "!"}, nil
}

func (g greeting) SayHelloStreamReply(req *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	if err := validateName(req.GetName()); err != nil {
		return err
	}
	for i := 1; i <= g.replies; i++ {
		msg := fmt.Sprintf("Hello, %s! (%d/%d)", req.GetName(), i, g.replies)
		if err := stream.Send(&greeterpb.HelloReply{Message: msg}); err != nil {
			return err
		}
	}
	return nil
}

func (greeting) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
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

// working does [WithDelay]'s simulated work before each reply of next.
type working struct {
	greeterpb.UnimplementedGreeterServer
	next greeterpb.GreeterServer
	work time.Duration
}

func (w working) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if err := wait(ctx, w.work); err != nil {
		return nil, err
	}
	return w.next.SayHello(ctx, req)
}

func (w working) SayHelloAgain(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if err := wait(ctx, w.work); err != nil {
		return nil, err
	}
	return w.next.SayHelloAgain(ctx, req)
}

func (w working) SayHelloStreamReply(req *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	return w.next.SayHelloStreamReply(req, pacedReplies{stream, w.work})
}

func (w working) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
	return w.next.SayHelloBidiStream(pacedBidi{stream, w.work})
}

// pacedReplies works before sending each reply.
type pacedReplies struct {
	grpc.ServerStreamingServer[greeterpb.HelloReply]
	work time.Duration
}

func (s pacedReplies) Send(m *greeterpb.HelloReply) error {
	if err := wait(s.Context(), s.work); err != nil {
		return err
	}
	return s.ServerStreamingServer.Send(m)
}

// pacedBidi works before sending each reply.
type pacedBidi struct {
	grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]
	work time.Duration
}

func (s pacedBidi) Send(m *greeterpb.HelloReply) error {
	if err := wait(s.Context(), s.work); err != nil {
		return err
	}
	return s.BidiStreamingServer.Send(m)
}

// wait does d of simulated work, or less if ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
