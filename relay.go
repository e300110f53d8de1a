package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultReplyReserve is the part of its budget a relay keeps for itself to
// answer its caller, unless changed with [WithReplyReserve].
const DefaultReplyReserve = 10 * time.Millisecond

// WithUpstream makes the server a relay: every method is answered by calling
// the same method on upstream, a greeter [Client] the caller builds and
// closes, after any simulated work ([WithDelay]). The upstream call gets the
// call's remaining budget minus the reply reserve ([WithReplyReserve]) and is
// cancelled the moment the relay's own caller goes away; a budget smaller
// than the reserve fails at once with DeadlineExceeded, without calling
// upstream. The upstream's errors keep their code. It turns on the deadline
// guard as [WithServerDeadlines] does. The default is no upstream: the
// server answers itself.
func WithUpstream(upstream *Client) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		c.deadline.on = true
		if c.deadline.upstream == nil {
			c.deadline.upstream = &relay{reserve: DefaultReplyReserve}
		}
		c.deadline.upstream.client, c.deadline.upstream.set = upstream, true
	})
}

// WithReplyReserve sets how much of its remaining budget a relay
// ([WithUpstream]) keeps to answer its caller after the upstream call ends;
// the default is [DefaultReplyReserve]. Without it, an upstream call that
// uses the whole budget leaves no time to reply and the caller sees its own
// deadline pass instead of the upstream's error.
func WithReplyReserve(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if c.deadline.upstream == nil {
			c.deadline.upstream = &relay{}
		}
		c.deadline.upstream.reserve = d
	})
}

// relay answers calls by calling an upstream greeter.
type relay struct {
	client  *Client
	set     bool
	reserve time.Duration
	logger  *slog.Logger // the server's, set by newGuard
}

func (r *relay) validate() error {
	switch {
	case !r.set:
		return errors.New("greeter: WithReplyReserve without WithUpstream")
	case r.client == nil:
		return errors.New("greeter: WithUpstream: nil client")
	case r.reserve < 0:
		return fmt.Errorf("greeter: WithReplyReserve(%v): must not be negative", r.reserve)
	}
	return nil
}

// budget derives the upstream call's context from the handler's: its
// deadline less the reserve.
func (r *relay) budget(ctx context.Context, method string) (context.Context, context.CancelFunc, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}, nil
	}
	if left := time.Until(dl); left <= r.reserve {
		return nil, nil, status.Errorf(codes.DeadlineExceeded,
			"greeter relay: %s: %v left, not more than the %v reply reserve; upstream not called", method, round(max(left, 0)), r.reserve)
	}
	ctx, cancel := context.WithDeadline(ctx, dl.Add(-r.reserve))
	return ctx, cancel, nil
}

// upstreamError keeps the upstream's code and details (a greeter
// upstream's ErrorInfo says whose deadline it was), says where it came
// from, and logs it: the relay's caller only sees the relay.
func (r *relay) upstreamError(ctx context.Context, method string, err error) error {
	st := status.Convert(err)
	var msg string
	var de *DeadlineError
	if errors.As(err, &de) {
		what := "deadline exceeded"
		if de.Code == codes.Canceled {
			what = "canceled"
		}
		r.logger.LogAttrs(ctx, slog.LevelInfo, "upstream call ended", slog.String("method", method),
			slog.String("code", de.Code.String()), slog.Duration("budget", round(de.Budget)), slog.Duration("after", round(de.Elapsed)))
		msg = fmt.Sprintf("greeter relay: %s: upstream %s after %v of its %v budget (ours less the %v reply reserve), %v",
			method, what, round(de.Elapsed), round(de.Budget), r.reserve, de.Phase)
	} else {
		r.logger.LogAttrs(ctx, slog.LevelInfo, "upstream call failed", slog.String("method", method), slog.String("code", st.Code().String()))
		msg = fmt.Sprintf("greeter relay: %s: upstream: %s", method, st.Message())
	}
	// The relay's client has already retried what was worth retrying:
	// gRFC A6's negative pushback tells the caller's grpc not to retry
	// again, so that retries do not multiply hop by hop.
	_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "-1"))
	p := st.Proto()
	p.Message = msg
	return status.FromProto(p).Err()
}

func (r *relay) unary(ctx context.Context, method string, req any) (any, error) {
	uctx, cancel, err := r.budget(ctx, method)
	if err != nil {
		return nil, err
	}
	defer cancel()
	name := req.(*greeterpb.HelloRequest).GetName()
	call := r.client.SayHello
	if strings.HasSuffix(method, "/SayHelloAgain") {
		call = r.client.SayHelloAgain
	}
	msg, err := call(uctx, name)
	if err != nil {
		return nil, r.upstreamError(ctx, method, err)
	}
	return &greeterpb.HelloReply{Message: msg}, nil
}

func (r *relay) serverStream(ss grpc.ServerStream, method string) error {
	req := new(greeterpb.HelloRequest)
	if err := ss.RecvMsg(req); err != nil {
		return err
	}
	// ss paces each forwarded reply by the simulated work, if any.
	uctx, cancel, err := r.budget(ss.Context(), method)
	if err != nil {
		return err
	}
	defer cancel()
	up, err := r.client.SayHelloStreamReply(uctx, req.GetName())
	if err != nil {
		return r.upstreamError(ss.Context(), method, err)
	}
	for {
		reply, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.upstreamError(ss.Context(), method, err)
		}
		if err := ss.SendMsg(reply); err != nil {
			return err
		}
	}
}

func (r *relay) bidiStream(ss grpc.ServerStream, method string) error {
	uctx, cancel, err := r.budget(ss.Context(), method)
	if err != nil {
		return err
	}
	defer cancel()
	up, err := r.client.SayHelloBidiStream(uctx)
	if err != nil {
		return r.upstreamError(ss.Context(), method, err)
	}
	// Requests flow up in their own goroutine. It ends when the caller
	// closes its side, or when its RecvMsg fails because this handler
	// returned and grpc ended the stream.
	recvErr := make(chan error, 1)
	go func() {
		for {
			req := new(greeterpb.HelloRequest)
			if err := ss.RecvMsg(req); err != nil {
				if err == io.EOF {
					err = up.CloseSend()
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
			return r.upstreamError(ss.Context(), method, err)
		}
		if err := ss.SendMsg(reply); err != nil {
			return err
		}
	}
}
