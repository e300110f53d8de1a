package greeter

// The client's call path: every call of a Client goes through invoke (unary)
// or newStream, which apply the client's deadline rules (the default
// timeout, per-attempt timeouts, the stream idle timeout) and turn a
// DeadlineExceeded or Canceled end into a *DeadlineError that says why.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/grpc-greeter/greeter/internal/observe"
	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Retry backoff of WithPerAttemptTimeout: exponential from retryBackoff,
// capped, with ±20% jitter as grpc's own retry does.
const (
	retryBackoff    = 25 * time.Millisecond
	retryBackoffMax = time.Second
)

// callState is what a call remembers to explain its end. It lives on the
// caller's stack: a call that succeeds pays for one time.Now.
type callState struct {
	start    time.Time
	method   string
	source   DeadlineSource
	budget   time.Duration
	attempts int
	lastCode codes.Code
	phase    Phase // forced phase; 0 to infer it from the error
	note     string
}

// contextErr is ctx.Err(), or DeadlineExceeded once the deadline has passed
// though ctx's timer has yet to run: grpc reports a deadline as soon as the
// clock says so, a hair before the context does.
func contextErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// invoke runs one unary call with the client's deadline rules and explains a
// DeadlineExceeded or Canceled end.
func (c *Client) invoke(ctx context.Context, method string, req, reply any, opts []grpc.CallOption) error {
	cs := callState{start: time.Now(), method: method, source: SourceCaller}
	dl, ok := ctx.Deadline()
	if !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
		dl, ok, cs.source = cs.start.Add(c.timeout), true, SourceClientDefault
	}
	if ok {
		cs.budget = dl.Sub(cs.start)
	} else {
		cs.source = SourceNone
	}
	if c.observed {
		ctx = observe.WithClientSource(ctx, cs.source.label())
	}
	if err := ctx.Err(); err != nil {
		// grpc would not send it either; failing here makes the phase
		// certain and costs the server nothing.
		cs.phase = PhaseBeforeSend
		return c.explain(ctx, &cs, status.FromContextError(err).Err())
	}
	if c.perAttempt > 0 {
		return c.invokeAttempts(ctx, &cs, req, reply, opts)
	}
	cs.attempts = 1
	err := c.conn.Invoke(ctx, method, req, reply, opts...)
	if err == nil {
		return nil
	}
	return c.explain(ctx, &cs, err)
}

func (c *Client) invokeAttempts(ctx context.Context, cs *callState, req, reply any, opts []grpc.CallOption) error {
	per := c.perAttempt
	// The budget that ran out is the attempt's own only when the last
	// attempt ended by it; otherwise it is the call's.
	callSource, callBudget := cs.source, cs.budget
	for attempt := 1; ; attempt++ {
		cs.attempts = attempt
		actx, cancel := ctx, context.CancelFunc(func() {})
		limited := false
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > per {
			actx, cancel = context.WithTimeout(ctx, per)
			limited = true
		}
		// As grpc's own retries do: servers (WithFailFirst among them)
		// tell a retry from a new call.
		actx = wire.WithAttempt(actx, attempt)
		err := c.conn.Invoke(actx, cs.method, req, reply, opts...)
		attemptExpired := limited && contextErr(ctx) == nil && errors.Is(contextErr(actx), context.DeadlineExceeded)
		cancel()
		if err == nil {
			return nil
		}
		code := status.Code(err)
		cs.lastCode = code
		cs.source, cs.budget = callSource, callBudget
		if attemptExpired && code == codes.DeadlineExceeded {
			cs.source, cs.budget = SourcePerAttempt, per
		}
		retryable := code == codes.Unavailable || (attemptExpired && code == codes.DeadlineExceeded)
		if !retryable || attempt >= c.maxAttempts || contextErr(ctx) != nil {
			return c.explain(ctx, cs, err)
		}
		backoff := min(retryBackoff<<(attempt-1), retryBackoffMax)
		backoff = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= backoff {
			// Sleeping would end past the deadline, with no time left
			// for the attempt it waits for: give up now, keeping the
			// last attempt's code, rather than fail later.
			cs.note = fmt.Sprintf("not retried: %v left, backoff %v", wire.Round(time.Until(dl)), wire.Round(backoff))
			return c.explain(ctx, cs, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			cs.phase, cs.source, cs.budget = PhaseBackoff, callSource, callBudget
			return c.explain(ctx, cs, status.FromContextError(ctx.Err()).Err())
		}
	}
}

// explain turns a DeadlineExceeded or Canceled error into a DeadlineError;
// other errors pass through unchanged.
func (c *Client) explain(ctx context.Context, cs *callState, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	code := st.Code()
	if code == codes.Unavailable {
		if ce := c.connectionError(ctx, err); ce != nil {
			err = ce
		}
	}
	if code != codes.DeadlineExceeded && code != codes.Canceled {
		if cs.attempts > 1 {
			return fmt.Errorf("greeter: %d attempts, last: %w", cs.attempts, err)
		}
		return err
	}
	e := &DeadlineError{
		Code:     code,
		Method:   cs.method,
		Budget:   cs.budget,
		Elapsed:  time.Since(cs.start),
		Source:   cs.source,
		Phase:    cs.phase,
		Attempts: cs.attempts,
		LastCode: cs.lastCode,
		err:      err,
	}
	if e.Attempts <= 1 {
		e.LastCode = code
	}
	if c.grpcRetries && e.Attempts > 0 {
		e.GRPCRetries = c.conn.GetMethodConfig(cs.method).RetryPolicy != nil
	}
	ctxErr := contextErr(ctx)
	fromServer := false
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != wire.ErrorInfoDomain {
			continue
		}
		fromServer = true
		switch info.GetReason() {
		case wire.ReasonServerCap:
			if ctxErr == nil || cs.source == SourceNone {
				e.Source = SourceServerCap
				if d, err := time.ParseDuration(info.GetMetadata()[wire.MetaCap]); err == nil {
					e.Budget = d
				}
			}
		case wire.ReasonServerDefault:
			e.Source = SourceServerDefault
			if d, err := time.ParseDuration(info.GetMetadata()[wire.MetaDefault]); err == nil {
				e.Budget = d
			}
		}
	}
	if e.Phase == 0 {
		e.Phase = c.phase(fromServer)
	}
	if code == codes.DeadlineExceeded && ctxErr == nil && e.Source != SourceServerCap && e.Source != SourceServerDefault && e.Source != SourcePerAttempt {
		// Not our own deadline: grpc applied the service config's
		// tighter method timeout, or the server ended the call.
		// A server that answers DeadlineExceeded early is not the
		// method timeout: that needs the call to have run for it.
		if mc := c.conn.GetMethodConfig(cs.method); mc.Timeout != nil && (cs.source == SourceNone || *mc.Timeout < cs.budget) && !fromServer && time.Since(cs.start) >= *mc.Timeout {
			e.Source, e.Budget = SourceServiceConfig, *mc.Timeout
		} else if !fromServer && e.Phase == PhaseServer {
			fromServer = true
		}
	}
	c.metrics.DeadlineError(ctx, cs.method, statusLabel(code), e.Source.label(), e.Phase.label())
	switch {
	case e.Phase == PhaseBeforeSend:
	case cs.note != "":
		e.Detail = cs.note
	case code == codes.Canceled && ctxErr == nil:
		e.Detail = st.Message() // the client was closed, or the server cancelled
	case fromServer:
		e.Detail = st.Message()
	case e.Phase == PhaseConnecting:
		// grpc says only "context deadline exceeded": the channel says
		// why no connection came.
		e.Detail = st.Message()
		if ce := c.connectionError(ctx, err); ce != nil {
			e.Connection, e.Detail = ce, ce.Error()
		}
	}
	return e
}

// phase says where a call that the server did not answer was when it
// ended, from grpc's state rather than its wording: a call goes out only on
// a READY channel, so one whose channel has no connection ready (IDLE,
// CONNECTING, TRANSIENT_FAILURE) was waiting for one.
func (c *Client) phase(fromServer bool) Phase {
	if fromServer {
		return PhaseServer
	}
	switch c.conn.GetState() {
	case connectivity.Idle, connectivity.Connecting, connectivity.TransientFailure:
		return PhaseConnecting
	}
	return PhaseServer
}

// helloStream is a Greeter stream and its deadline wrapper in one
// allocation.
type helloStream struct {
	grpc.GenericClientStream[greeterpb.HelloRequest, greeterpb.HelloReply]
	ds deadlineStream
}

// newStream opens a stream with the client's deadline rules: the idle
// timeout, and explained errors on NewStream and RecvMsg.
func (c *Client) newStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts []grpc.CallOption) (*grpc.GenericClientStream[greeterpb.HelloRequest, greeterpb.HelloReply], error) {
	cs := callState{start: time.Now(), method: method, source: SourceCaller, attempts: 1}
	idle := c.streamIdle
	if dl, ok := ctx.Deadline(); ok {
		cs.budget = dl.Sub(cs.start)
	} else {
		cs.source = SourceNone
		if !c.streamIdleSet {
			// Unbounded only by the importer's choice: the default
			// timeout, which a whole stream would outgrow, bounds its
			// silences instead.
			idle = c.timeout
		}
	}
	if c.observed {
		ctx = observe.WithClientSource(ctx, cs.source.label())
	}
	if err := ctx.Err(); err != nil {
		cs.phase, cs.attempts = PhaseBeforeSend, 0
		return nil, c.explain(ctx, &cs, status.FromContextError(err).Err())
	}
	hs := &helloStream{ds: deadlineStream{c: c, cs: cs, ctx: ctx}}
	s := &hs.ds
	sctx := ctx
	if idle > 0 {
		var cancel context.CancelCauseFunc
		sctx, cancel = context.WithCancelCause(ctx)
		s.idle, s.sctx, s.cancel = idle, sctx, cancel
		s.timer = time.AfterFunc(idle, func() { cancel(errStreamIdle) })
	}
	stream, err := c.conn.NewStream(sctx, desc, method, opts...)
	if err != nil {
		err = s.explain(err)
		s.stop()
		return nil, err
	}
	s.ClientStream = stream
	hs.GenericClientStream.ClientStream = s
	return &hs.GenericClientStream, nil
}

var errStreamIdle = errors.New("greeter: stream idle timeout")

// deadlineStream explains a stream's end and runs its idle timeout.
type deadlineStream struct {
	grpc.ClientStream
	c   *Client
	cs  callState
	ctx context.Context // the caller's context

	// Set with an idle timeout only.
	idle   time.Duration
	sctx   context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func (s *deadlineStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil && s.timer != nil {
		s.timer.Reset(s.idle)
	}
	return err
}

func (s *deadlineStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		if s.timer != nil {
			s.timer.Reset(s.idle)
		}
		return nil
	}
	err = s.explain(err)
	s.stop()
	return err
}

func (s *deadlineStream) explain(err error) error {
	if err == io.EOF {
		return err
	}
	if s.sctx != nil && errors.Is(context.Cause(s.sctx), errStreamIdle) && contextErr(s.ctx) == nil {
		return &DeadlineError{
			Code:     codes.DeadlineExceeded,
			Method:   s.cs.method,
			Budget:   s.idle,
			Elapsed:  time.Since(s.cs.start),
			Source:   SourceStreamIdle,
			Phase:    PhaseServer,
			Attempts: 1,
			LastCode: codes.DeadlineExceeded, // grpc says Canceled: we ended it
			Detail:   fmt.Sprintf("no message for %v", s.idle),
			err:      err,
		}
	}
	return explainUnimplemented(s.c.explain(s.ctx, &s.cs, err), s.cs.method)
}

// stop ends the idle clock once the stream has ended.
func (s *deadlineStream) stop() {
	if s.timer != nil {
		s.timer.Stop()
		s.cancel(nil)
	}
}
