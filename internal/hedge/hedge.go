// Package hedge hedges unary calls as gRFC A6's hedgingPolicy describes
// (https://github.com/grpc/proposal/blob/master/A6-client-retries.md), which
// grpc-go does not implement (grpc-go#2823): send the call, send it again
// after each Delay without an answer, up to MaxAttempts copies in flight;
// the first answer that is OK or fatal wins and the others are cancelled.
package hedge

import (
	"context"
	"time"

	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Policy is a validated hedging policy.
type Policy struct {
	// MaxAttempts is the most copies sent, the first included: at least 2.
	MaxAttempts int
	// Delay is the wait before each further copy while none has answered.
	Delay time.Duration
	// NonFatal are the codes after which another attempt may still win.
	NonFatal []codes.Code
}

// attempt is the outcome of one hedged attempt.
type attempt struct {
	err             error
	reply           proto.Message
	header, trailer metadata.MD
	peer            peer.Peer
}

// UnaryClientInterceptor hedges every unary call whose reply is a proto
// message. grpc.Header, grpc.Trailer and grpc.Peer call options report the
// winning attempt; each attempt after the first carries the
// grpc-previous-rpc-attempts header.
func UnaryClientInterceptor(p Policy) grpc.UnaryClientInterceptor {
	nonFatal := make(map[codes.Code]bool, len(p.NonFatal))
	for _, c := range p.NonFatal {
		nonFatal[c] = true
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		out, ok := reply.(proto.Message)
		if !ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		// Call options that write results back would be written by every
		// attempt at once: each attempt gets its own, and the winner's are
		// copied to the caller's.
		var header, trailer *metadata.MD
		var pr *peer.Peer
		rest := make([]grpc.CallOption, 0, len(opts)+3)
		for _, o := range opts {
			switch o := o.(type) {
			case grpc.HeaderCallOption:
				header = o.HeaderAddr
			case grpc.TrailerCallOption:
				trailer = o.TrailerAddr
			case grpc.PeerCallOption:
				pr = o.PeerAddr
			default:
				rest = append(rest, o)
			}
		}

		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // cancels the attempts that lost
		results := make(chan *attempt, p.MaxAttempts)
		started := 0
		start := func() {
			started++
			actx := wire.WithAttempt(ctx, started)
			a := &attempt{reply: out.ProtoReflect().New().Interface()}
			aopts := append(rest[:len(rest):len(rest)], grpc.Header(&a.header), grpc.Trailer(&a.trailer), grpc.Peer(&a.peer))
			go func() {
				a.err = invoker(actx, method, req, a.reply, cc, aopts...)
				results <- a
			}()
		}
		commit := func(a *attempt) error {
			if a.err == nil {
				proto.Reset(out)
				proto.Merge(out, a.reply)
			}
			if header != nil {
				*header = a.header
			}
			if trailer != nil {
				*trailer = a.trailer
			}
			if pr != nil {
				*pr = a.peer
			}
			return a.err
		}

		start()
		timer := time.NewTimer(p.Delay)
		defer timer.Stop()
		for finished := 0; ; {
			var hedge <-chan time.Time
			if started < p.MaxAttempts {
				hedge = timer.C
			}
			select {
			case <-hedge:
				start()
				timer.Reset(p.Delay)
			case a := <-results:
				finished++
				if a.err == nil || !nonFatal[status.Code(a.err)] || finished == p.MaxAttempts {
					return commit(a)
				}
				if started < p.MaxAttempts {
					// A non-fatal failure: hedge at once rather than wait.
					start()
					timer.Reset(p.Delay)
				}
			}
		}
	}
}
