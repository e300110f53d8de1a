package greeter

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// maxHedgedAttempts is the cap gRFC A6 puts on maxAttempts.
const maxHedgedAttempts = 5

// HedgingPolicy says how to hedge a unary call, with the meaning of gRFC A6's
// hedgingPolicy (https://github.com/grpc/proposal/blob/master/A6-client-retries.md):
// send the call, and if no answer has come after HedgingDelay send it again,
// up to MaxAttempts copies in flight at once; the first answer that is OK or
// has a status not in NonFatalStatusCodes wins, and every other attempt is
// cancelled. An attempt that fails with a non-fatal code makes the next one
// start at once. When every attempt has failed with a non-fatal code, the
// call returns the last failure. All attempts share the call's one deadline.
//
// Hedging trades load for tail latency: use it only for idempotent calls
// (greetings are) and small MaxAttempts.
type HedgingPolicy struct {
	// MaxAttempts is the most copies of the call sent, the first included:
	// at least 2; values over 5 count as 5, as in gRFC A6.
	MaxAttempts int
	// HedgingDelay is the wait before sending each further copy while none
	// has answered; 0 sends all MaxAttempts copies at once.
	HedgingDelay time.Duration
	// NonFatalStatusCodes are the codes that do not end the call: another
	// attempt may still succeed. Typically codes.Unavailable. Empty means
	// every failure is fatal.
	NonFatalStatusCodes []codes.Code
}

// WithHedging hedges the client's unary calls (SayHello, SayHelloAgain) with
// p; the default is no hedging. grpc-go reads no hedgingPolicy from the
// service config (grpc-go#2823), so greeter implements it as the innermost
// client interceptor: interceptors given with [WithUnaryClientInterceptor]
// see one call. Streams are not hedged. Each attempt carries the
// grpc-previous-rpc-attempts header. As gRFC A6 makes a method's hedging and
// retry policies exclusive, grpc's service-config retries (those of
// [DefaultServiceConfig] included) are turned off with
// grpc.WithDisableRetry: list codes.Unavailable in NonFatalStatusCodes to
// have a failed attempt followed at once by the next. grpc.Header,
// grpc.Trailer and grpc.Peer call options report the winning attempt.
// An invalid p is an error at [NewClient].
func WithHedging(p HedgingPolicy) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		switch {
		case p.MaxAttempts < 2:
			c.res.errs = append(c.res.errs, fmt.Errorf("greeter: WithHedging: MaxAttempts %d: must be at least 2", p.MaxAttempts))
		case p.HedgingDelay < 0:
			c.res.errs = append(c.res.errs, fmt.Errorf("greeter: WithHedging: HedgingDelay %v: must not be negative", p.HedgingDelay))
		default:
			p.MaxAttempts = min(p.MaxAttempts, maxHedgedAttempts)
			p.NonFatalStatusCodes = append([]codes.Code(nil), p.NonFatalStatusCodes...)
			c.res.hedging = &p
		}
	})
}

// attempt is the outcome of one hedged attempt.
type attempt struct {
	err             error
	reply           proto.Message
	header, trailer metadata.MD
	peer            peer.Peer
}

func hedgingInterceptor(p HedgingPolicy) grpc.UnaryClientInterceptor {
	nonFatal := make(map[codes.Code]bool, len(p.NonFatalStatusCodes))
	for _, c := range p.NonFatalStatusCodes {
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
			actx := ctx
			if started > 0 {
				actx = metadata.AppendToOutgoingContext(ctx, previousAttemptsHeader, strconv.Itoa(started))
			}
			started++
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
		timer := time.NewTimer(p.HedgingDelay)
		defer timer.Stop()
		for finished := 0; ; {
			var hedge <-chan time.Time
			if started < p.MaxAttempts {
				hedge = timer.C
			}
			select {
			case <-hedge:
				start()
				timer.Reset(p.HedgingDelay)
			case a := <-results:
				finished++
				if a.err == nil || !nonFatal[status.Code(a.err)] || finished == p.MaxAttempts {
					return commit(a)
				}
				if started < p.MaxAttempts {
					// A non-fatal failure: hedge at once rather than wait.
					start()
					timer.Reset(p.HedgingDelay)
				}
			}
		}
	}
}
