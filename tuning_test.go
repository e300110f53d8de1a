package greeter_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"go.uber.org/goleak"
)

// The server's stream workers are fewer than the streams it may have open:
// streams that outnumber them still run at once, and a call still gets
// through while every worker is held by a stream that has not ended.
func TestStreamsOutnumberWorkers(t *testing.T) {
	ctx := testContext(t)
	c := newClient(t, newServer(t))
	streams := greeter.StreamWorkersPerCPU*runtime.GOMAXPROCS(0) + 2
	for i := range streams {
		// Each stream's handler stays in Recv until the test ends.
		s, err := c.SayHelloBidiStream(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if err := s.Send(&greeterpb.HelloRequest{Name: "you"}); err != nil {
			t.Fatalf("stream %d: Send: %v", i, err)
		}
		if r, err := s.Recv(); err != nil || r.GetMessage() != "Hello, you!" {
			t.Fatalf("stream %d: Recv = %q, %v; want Hello, you!", i, r.GetMessage(), err)
		}
	}
	if got, err := c.SayHello(ctx, "too"); err != nil || got != "Hello, too!" {
		t.Fatalf("SayHello with %d streams open = %q, %v; want Hello, too!", streams, got, err)
	}
}

// A server that was never served still has its stream workers: Shutdown
// stops them.
func TestShutdownUnservedStopsWorkers(t *testing.T) {
	before := goleak.IgnoreCurrent()
	srv, err := greeter.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	goleak.VerifyNone(t, before)
}
