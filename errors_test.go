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
