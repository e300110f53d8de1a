package greeter_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/greetertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// badRequestFields returns the fields named by err's BadRequest detail.
func badRequestFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

func TestInvalidNameGetsBadRequest(t *testing.T) {
	c := greetertest.NewClient(t)
	ctx := testContext(t)
	tests := []struct {
		name, input string
		wantErr     bool
	}{
		{"empty", "", true},
		{"too long", strings.Repeat("n", greeter.MaxNameLength+1), true},
		{"longest allowed", strings.Repeat("n", greeter.MaxNameLength), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if !tt.wantErr {
					if err != nil {
						t.Fatalf("%s: %v, want success", what, err)
					}
					return
				}
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("%s = %v, want InvalidArgument", what, err)
				}
				if f := badRequestFields(err); len(f) != 1 || f[0] != "name" {
					t.Fatalf("%s: BadRequest field violations %q, want [name]", what, f)
				}
			}
			_, err := c.SayHello(ctx, tt.input)
			check("SayHello", err)
			_, err = c.SayHelloAgain(ctx, tt.input)
			check("SayHelloAgain", err)

			stream, err := c.SayHelloStreamReply(ctx, tt.input)
			if err == nil {
				for err == nil {
					_, err = stream.Recv()
				}
				if err == io.EOF {
					err = nil
				}
			}
			check("SayHelloStreamReply", err)

			bidi, err := c.SayHelloBidiStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := bidi.Send(&greeterpb.HelloRequest{Name: tt.input}); err != nil {
				t.Fatal(err)
			}
			if err := bidi.CloseSend(); err != nil {
				t.Fatal(err)
			}
			for err == nil {
				_, err = bidi.Recv()
			}
			if err == io.EOF {
				err = nil
			}
			check("SayHelloBidiStream", err)
		})
	}
}

func TestUnknownMethodIsUnimplemented(t *testing.T) {
	c := greetertest.NewClient(t)
	ctx := testContext(t)
	for _, method := range []string{"/Greeter/SayGoodbye", "/no.such.Service/Method"} {
		err := c.Conn().Invoke(ctx, method, &greeterpb.HelloRequest{Name: "x"}, new(greeterpb.HelloReply))
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("Invoke(%s) = %v, want Unimplemented", method, err)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestPanicRecovery(t *testing.T) {
	var logs lockedBuffer
	srv := newServer(t,
		greeter.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if req.(*greeterpb.HelloRequest).GetName() == "boom" {
				panic("secret internal state")
			}
			return h(ctx, req)
		}),
		greeter.WithStreamServerInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			var m []int
			_ = m[3] // a runtime error panic
			return h(srv, ss)
		}))
	c := newClient(t, srv)
	ctx := testContext(t)

	_, err := c.SayHello(ctx, "boom")
	if status.Code(err) != codes.Internal {
		t.Fatalf("SayHello(boom) = %v, want Internal", err)
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "secret") {
		t.Fatalf("status message %q leaks the panic value", msg)
	}
	stream, err := c.SayHelloStreamReply(ctx, "boom")
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream with a panicking interceptor = %v, want Internal", err)
	}
	// The server keeps serving.
	if got, err := c.SayHello(ctx, "calm"); err != nil || got != "Hello, calm!" {
		t.Fatalf("SayHello after panics = %q, %v", got, err)
	}
	// The panic and its stack went to the logger, not the wire.
	for _, want := range []string{"recovered from panic", "secret internal state", "index out of range", "goroutine"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// rawCodec sends a request's bytes as they are, to put on the wire what no
// generated client would. Named "proto", so that the server decodes them
// as it decodes every request.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = data
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A name that is not valid UTF-8, sent as raw bytes, is the caller's
// mistake: InvalidArgument with a field violation, not grpc's Internal, on
// a unary call and on a stream alike, and the server goes on serving.
func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	upstream := newClient(t, newServer(t))
	for name, opts := range map[string][]greeter.ServerOption{
		"built-in":           nil,
		"importer's handler": {handlerFunc(nil)},
		"relay":              {greeter.WithUpstream(upstream)},
	} {
		t.Run(name, func(t *testing.T) { invalidUTF8(t, newClient(t, newServer(t, opts...))) })
	}
}

func invalidUTF8(t *testing.T, c *greeter.Client) {
	ctx := testContext(t)
	req := []byte{0x0a, 0x02, 0xff, 0xfe} // field 1 (name), 2 bytes that are not UTF-8
	var reply []byte
	err := c.Conn().Invoke(ctx, "/Greeter/SayHello", req, &reply, grpc.ForceCodec(rawCodec{}))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || violation(st) != "name: must be valid UTF-8" {
		t.Errorf("SayHello(% x) = %v, violation %q; want InvalidArgument, name: must be valid UTF-8", req, err, violation(st))
	}

	desc := &grpc.StreamDesc{StreamName: "SayHelloBidiStream", ServerStreams: true, ClientStreams: true}
	stream, err := c.Conn().NewStream(ctx, desc, "/Greeter/SayHelloBidiStream", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(req); err != nil {
		t.Fatal(err)
	}
	if err := stream.RecvMsg(&reply); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bidi Recv = %v; want InvalidArgument", err)
	}

	if got, err := c.SayHello(ctx, "you"); err != nil || got != "Hello, you!" {
		t.Errorf("after the bad requests, SayHello = %q, %v; want the server still serving", got, err)
	}
}

// violation returns the first BadRequest field violation of st, as
// "field: description".
func violation(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			v := br.GetFieldViolations()[0]
			return v.GetField() + ": " + v.GetDescription()
		}
	}
	return ""
}
