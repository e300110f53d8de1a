package greeter_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// countingStream counts the bytes of the messages a handler sends.
type countingStream struct {
	grpc.ServerStream
	sent *atomic.Int64
}

func (s countingStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.sent.Add(int64(proto.Size(m.(proto.Message))))
	}
	return err
}

// stalledSendBytes starts a 100MB server stream, reads one message and then
// stops reading; it returns how many bytes the server managed to send once
// it is blocked, and checks that cancelling unblocks it.
func stalledSendBytes(t *testing.T, window int32) int64 {
	t.Helper()
	const replies = 100_000
	var sent atomic.Int64
	handlerErr := make(chan error, 1)
	srv := newServer(t, greeter.WithStreamReplies(replies), greeter.WithStreamServerInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, countingStream{ss, &sent})
			handlerErr <- err
			return err
		}))
	c := newClient(t, srv, greeter.WithInitialWindowSize(window), greeter.WithInitialConnWindowSize(window))
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	stream, err := c.SayHelloStreamReply(ctx, strings.Repeat("n", greeter.MaxNameLength))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	// The consumer stops reading. Blocking is an absence of progress, so
	// wait until the count stops moving for a while.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last, still := int64(-1), 0
	for still < 10 {
		select {
		case <-tick.C:
		case err := <-handlerErr:
			t.Fatalf("handler returned %v: it sent everything instead of blocking", err)
		case <-ctx.Done():
			t.Fatal("the server never stopped sending")
		}
		if n := sent.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	// Cancelling the stream unblocks the server's Send.
	cancel()
	select {
	case err := <-handlerErr:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("blocked handler ended with %v, want Canceled", err)
		}
	case <-time.After(defaultTestTimeout):
		t.Fatal("the blocked handler did not return after cancel")
	}
	return last
}

func TestFlowControlBlocksSenderWithBoundedMemory(t *testing.T) {
	const total = 100_000 * (greeter.MaxNameLength + 20) // about 100MB in all
	small := stalledSendBytes(t, 64<<10)
	t.Logf("window 64KiB: server blocked after sending %d bytes of ~%d", small, total)
	// What the client's window holds, plus what the server's transport
	// queues (grpc's 64KiB write quota per stream), plus slack.
	if small > 256<<10 {
		t.Fatalf("with a 64KiB window the server sent %d bytes before blocking, want under 256KiB", small)
	}
	large := stalledSendBytes(t, 1<<20)
	t.Logf("window 1MiB: server blocked after sending %d bytes", large)
	if large < 1<<20 || large > 2<<20 {
		t.Fatalf("with a 1MiB window the server sent %d bytes before blocking, want between 1MiB and 2MiB", large)
	}
}

func TestWindowSizeValidates(t *testing.T) {
	if _, err := greeter.NewServer(greeter.WithInitialWindowSize(1024)); err == nil {
		t.Error("NewServer accepted a 1KiB window")
	}
	if c, err := greeter.NewClient("localhost:1", greeter.WithInsecure(), greeter.WithInitialConnWindowSize(1024)); err == nil {
		c.Close()
		t.Error("NewClient accepted a 1KiB window")
	}
}
