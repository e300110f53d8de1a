package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// relay is the Greeter handler of [WithUpstream]: it answers every call
// by calling the same method on an upstream greeter, with the call's
// remaining budget less a reserve to reply in.
type relay struct {
	greeterpb.UnimplementedGreeterServer
	client  *Client
	reserve time.Duration
	logger  *slog.Logger
}

// maxRelayHops is how many greeter relays a call may pass through: more
// means relays point at each other in a loop.
const maxRelayHops = 8

// budget derives the upstream call's context from the handler's: its
// deadline less the reserve, and one more relay hop. It refuses a call
// that has passed through too many relays already.
func (r *relay) budget(ctx context.Context, method string) (context.Context, context.CancelFunc, error) {
	hops := wire.Hops(ctx)
	if hops >= maxRelayHops {
		r.logger.LogAttrs(ctx, slog.LevelWarn, "relay loop: call refused", slog.String("method", method), slog.Int("hops", hops))
		return nil, nil, status.Errorf(codes.FailedPrecondition,
			"greeter relay: %s: relay loop: the call has passed through %d relays already (the most is %d); check where each relay's upstream points", method, hops, maxRelayHops)
	}
	up := metadata.AppendToOutgoingContext(ctx, wire.HopsHeader, strconv.Itoa(hops+1))
	dl, ok := ctx.Deadline()
	if !ok {
		return up, func() {}, nil
	}
	if left := time.Until(dl); left <= r.reserve {
		return nil, nil, status.Errorf(codes.DeadlineExceeded,
			"greeter relay: %s: %v left, not more than the %v reply reserve; upstream not called", method, wire.Round(max(left, 0)), r.reserve)
	}
	up, cancel := context.WithDeadline(up, dl.Add(-r.reserve))
	return up, cancel, nil
}

// upstreamError keeps the upstream's code and details (a greeter
// upstream's ErrorInfo says whose deadline it was), says where it came
// from, and logs it: the relay's caller only sees the relay.
func (r *relay) upstreamError(ctx context.Context, method string, err error) error {
	st := status.Convert(err)
	var msg string
	var de *DeadlineError
	var ce *ConnectionError
	switch {
	case errors.As(err, &de):
		what := "deadline exceeded"
		if de.Code == codes.Canceled {
			what = "canceled"
		}
		attrs := []slog.Attr{slog.String("method", method), slog.String("code", de.Code.String()),
			slog.Duration("budget", wire.Round(de.Budget)), slog.Duration("after", wire.Round(de.Elapsed))}
		if de.Connection != nil {
			attrs = append(attrs, slog.String("connection", de.Connection.Error()))
		}
		r.logger.LogAttrs(ctx, slog.LevelInfo, "upstream call ended", attrs...)
		msg = fmt.Sprintf("greeter relay: %s: upstream %s after %v of its %v budget (ours less the %v reply reserve), %v",
			method, what, wire.Round(de.Elapsed), wire.Round(de.Budget), r.reserve, de.Phase)
	case errors.As(err, &ce):
		// Where the upstream is, and why it cannot be reached, is the
		// relay's business: it goes to the log, not to the caller.
		r.logger.LogAttrs(ctx, slog.LevelWarn, "upstream unreachable", slog.String("method", method), slog.String("connection", ce.Error()))
		msg = fmt.Sprintf("greeter relay: %s: upstream unavailable", method)
	default:
		r.logger.LogAttrs(ctx, slog.LevelInfo, "upstream call failed", slog.String("method", method), slog.String("code", st.Code().String()))
		msg = st.Message()
		if !strings.HasPrefix(msg, "greeter relay: ") { // another relay's says where already
			msg = fmt.Sprintf("greeter relay: %s: upstream: %s", method, msg)
		}
	}
	// The relay's client has already retried what was worth retrying:
	// gRFC A6's negative pushback tells the caller's grpc not to retry
	// again, so that retries do not multiply hop by hop.
	_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "-1"))
	p := st.Proto()
	p.Message = msg
	return status.FromProto(p).Err()
}

func (r *relay) SayHello(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return r.unary(ctx, req, r.client.SayHello)
}

func (r *relay) SayHelloAgain(ctx context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return r.unary(ctx, req, r.client.SayHelloAgain)
}

func (r *relay) unary(ctx context.Context, req *greeterpb.HelloRequest, call func(context.Context, string, ...grpc.CallOption) (string, error)) (*greeterpb.HelloReply, error) {
	method, _ := grpc.Method(ctx)
	uctx, cancel, err := r.budget(ctx, method)
	if err != nil {
		return nil, err
	}
	defer cancel()
	msg, err := call(uctx, req.GetName())
	if err != nil {
		return nil, r.upstreamError(ctx, method, err)
	}
	return &greeterpb.HelloReply{Message: msg}, nil
}

func (r *relay) SayHelloStreamReply(req *greeterpb.HelloRequest, stream grpc.ServerStreamingServer[greeterpb.HelloReply]) error {
	ctx := stream.Context()
	method, _ := grpc.Method(ctx)
	uctx, cancel, err := r.budget(ctx, method)
	if err != nil {
		return err
	}
	defer cancel()
	up, err := r.client.SayHelloStreamReply(uctx, req.GetName())
	if err != nil {
		return r.upstreamError(ctx, method, err)
	}
	for {
		reply, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.upstreamError(ctx, method, err)
		}
		if err := stream.Send(reply); err != nil {
			return err
		}
	}
}

func (r *relay) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
	ctx := stream.Context()
	method, _ := grpc.Method(ctx)
	uctx, cancel, err := r.budget(ctx, method)
	if err != nil {
		return err
	}
	defer cancel()
	uctx, abandon := context.WithCancel(uctx)
	defer abandon()
	up, err := r.client.SayHelloBidiStream(uctx)
	if err != nil {
		return r.upstreamError(ctx, method, err)
	}
	// Requests flow up in their own goroutine. It ends when the caller
	// closes its side, or when its Recv fails: a request refused (the
	// upstream call is abandoned, and the refusal is the answer), or
	// this handler returned and grpc ended the stream.
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				if err == io.EOF {
					err = up.CloseSend()
				} else {
					abandon()
				}
				recvErr <- err
				return
			}
			if err := up.Send(req); err != nil {
				recvErr <- nil // upstream ended: its Recv says why
				return
			}
		}
	}()
	for {
		reply, err := up.Recv()
		if err == io.EOF {
			// The upstream is done. A greeter upstream ends only
			// after the caller closed its side; another may end
			// first, and then returning ends the caller's side too.
			select {
			case err := <-recvErr:
				return err
			default:
				return nil
			}
		}
		if err != nil {
			select {
			case rerr := <-recvErr:
				if rerr != nil {
					return rerr // the caller's side failed first
				}
			default:
			}
			return r.upstreamError(ctx, method, err)
		}
		if err := stream.Send(reply); err != nil {
			return err
		}
	}
}
