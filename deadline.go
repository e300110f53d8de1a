package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DeadlineSource says where the budget of a call came from.
type DeadlineSource int

// The sources of a call's budget, from the caller's side of the call.
const (
	// SourceNone means the call had no deadline at all.
	SourceNone DeadlineSource = iota
	// SourceCaller is the deadline of the context the caller passed.
	SourceCaller
	// SourceClientDefault is the client's default timeout, given to a call
	// whose context had no deadline: see [WithDefaultTimeout].
	SourceClientDefault
	// SourceServiceConfig is the method's timeout in the client's gRPC
	// service config (methodConfig[].timeout), when it was the tighter one.
	SourceServiceConfig
	// SourcePerAttempt is the per-attempt timeout of
	// [WithPerAttemptTimeout].
	SourcePerAttempt
	// SourceServerCap is the server's own maximum for the method, which it
	// reports back when it ends a call: see [DeadlinePolicy].
	SourceServerCap
	// SourceServerDefault is the server's default budget for calls that
	// arrive without a deadline, which it reports back the same way.
	SourceServerDefault
	// SourceStreamIdle is the idle timeout of [WithStreamIdleTimeout].
	SourceStreamIdle
)

// String names the source as the explanation of a [DeadlineError] does:
// "caller's context", "client default", and so on.
func (s DeadlineSource) String() string {
	switch s {
	case SourceNone:
		return "no deadline"
	case SourceCaller:
		return "caller's context"
	case SourceClientDefault:
		return "client default"
	case SourceServiceConfig:
		return "service-config method timeout"
	case SourcePerAttempt:
		return "per-attempt timeout"
	case SourceServerCap:
		return "server's cap"
	case SourceServerDefault:
		return "server's default"
	case SourceStreamIdle:
		return "stream idle timeout"
	}
	return fmt.Sprintf("DeadlineSource(%d)", int(s))
}

// Phase says where a call was when its deadline ran out or it was
// cancelled.
type Phase int

// The phases of a call, in the order a call goes through them.
const (
	// PhaseBeforeSend: the context had already ended when the call was
	// made; nothing was sent and the server saw nothing.
	PhaseBeforeSend Phase = iota + 1
	// PhaseConnecting: the call was waiting for a connection (name
	// resolution, connecting, or a wait-for-ready call waiting for the
	// server) and was never sent.
	PhaseConnecting
	// PhaseServer: the request was sent and the reply did not come in time,
	// or the server itself ended the call.
	PhaseServer
	// PhaseBackoff: the call was waiting between two attempts.
	PhaseBackoff
)

// String says where the call was, as the explanation of a [DeadlineError]
// does: "before send", "on the server", and so on.
func (p Phase) String() string {
	switch p {
	case PhaseBeforeSend:
		return "before send"
	case PhaseConnecting:
		return "while waiting for a connection"
	case PhaseServer:
		return "on the server"
	case PhaseBackoff:
		return "in retry backoff"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// DeadlineError explains a call that ended with DeadlineExceeded or
// Canceled: which budget ran out, where it came from, where the call was,
// and how many attempts were made. Every [Client] method returns one for
// those two codes; get it with errors.As.
//
// It keeps its gRPC code: status.Code(err) is codes.DeadlineExceeded or
// codes.Canceled, and errors.Is(err, context.DeadlineExceeded) (or
// context.Canceled) holds, so code written against plain grpc-go works
// unchanged.
type DeadlineError struct {
	// Code is codes.DeadlineExceeded or codes.Canceled.
	Code codes.Code
	// Method is the full method name, "/Greeter/SayHello".
	Method string
	// Budget is the time the call was given by Source; zero when it had no
	// deadline.
	Budget time.Duration
	// Elapsed is the time from the call's start to its end.
	Elapsed time.Duration
	// Source is where Budget came from.
	Source DeadlineSource
	// Phase is where the call was when it ended.
	Phase Phase
	// Attempts is how many times greeter tried the request: 0 when it
	// never left, more than 1 under [WithPerAttemptTimeout].
	Attempts int
	// LastCode is the code of the last attempt, which may differ from Code
	// when the deadline ran out between attempts.
	LastCode codes.Code
	// GRPCRetries is true when the method had a retry policy in the
	// client's service config ([DefaultServiceConfig] has one): grpc may
	// then have retried within greeter's attempt, and then LastCode and
	// Phase describe the end of grpc's last try. grpc-go reports its
	// retries to no one but stats handlers, whose price every call would
	// pay; the server sees them in the grpc-previous-rpc-attempts header.
	GRPCRetries bool
	// Detail is what the server, or grpc, said about the end of the call.
	Detail string

	err error
	// st caches GRPCStatus: status.Code(err) calls it, often.
	st atomic.Pointer[status.Status]
	// statuses is the Client's, to share statuses between errors; nil
	// builds each error its own.
	statuses *statusCache
}

// Error explains the end of the call in one line: "deadline exceeded after
// 100ms (budget 100ms from caller's context) on the server; 1 attempt, last:
// DeadlineExceeded".
func (e *DeadlineError) Error() string {
	var buf [256]byte
	return string(e.appendExplanation(buf[:0], true))
}

// appendExplanation appends the explanation to b, with the time the call
// took when elapsed is set. Plain appends, not fmt: status.Code(err) asks
// for the explanation, in every deadline storm.
func (e *DeadlineError) appendExplanation(b []byte, elapsed bool) []byte {
	if e.Code == codes.Canceled {
		b = append(b, "canceled"...)
	} else {
		b = append(b, "deadline exceeded"...)
	}
	if e.Phase == PhaseBeforeSend {
		switch {
		case e.Code == codes.Canceled:
			b = append(b, " before send: the context was canceled before the call"...)
		case e.Source != SourceNone:
			b = append(b, " before send: the deadline from "...)
			b = append(b, e.Source.String()...)
			b = append(b, " had passed "...)
			b = appendDuration(b, -e.Budget)
			b = append(b, " before the call"...)
		}
		return append(b, "; 0 attempts"...)
	}
	if elapsed {
		b = append(b, " after "...)
		b = appendDuration(b, e.Elapsed)
	}
	if e.Source != SourceNone {
		b = append(b, " (budget "...)
		b = appendDuration(b, e.Budget)
		b = append(b, " from "...)
		b = append(b, e.Source.String()...)
		b = append(b, ')')
	} else {
		b = append(b, " (no deadline)"...)
	}
	b = append(b, ' ')
	b = append(b, e.Phase.String()...)
	if e.Detail != "" {
		b = append(b, ": "...)
		b = append(b, e.Detail...)
	}
	b = append(b, "; "...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	if e.Attempts == 1 {
		b = append(b, " attempt, last: "...)
	} else {
		b = append(b, " attempts, last: "...)
	}
	b = append(b, e.LastCode.String()...)
	if e.GRPCRetries {
		b = append(b, " (grpc's retry policy may have retried within it)"...)
	}
	return b
}

// appendDuration appends round(d) as d.String() would, without its
// allocation in the usual case, a whole number of milliseconds under a
// second.
func appendDuration(b []byte, d time.Duration) []byte {
	d = round(d)
	if d%time.Millisecond == 0 && d > -time.Second && d < time.Second && d != 0 {
		return append(strconv.AppendInt(b, int64(d/time.Millisecond), 10), "ms"...)
	}
	return append(b, d.String()...)
}

// round keeps explanations readable: milliseconds are precise enough to say
// which deadline ran out, nanoseconds only add noise.
func round(d time.Duration) time.Duration {
	if d >= time.Millisecond || d <= -time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// GRPCStatus returns the error as a gRPC status with the same code and the
// details of the original status, so that status.Code and status.Convert see
// through it. Its message is the explanation of Error without the time the
// call took ("deadline exceeded (budget 100ms from caller's context) on the
// server; 1 attempt, last: DeadlineExceeded"): calls that ended alike share
// one message, which logs can group, and a Client builds each such status
// once, so that status.Code(err), asked of every failed call, builds no
// status when many calls miss their deadline at once.
func (e *DeadlineError) GRPCStatus() *status.Status {
	if st := e.st.Load(); st != nil {
		return st
	}
	orig := status.Convert(e.err)
	if len(orig.Details()) > 0 {
		p := orig.Proto()
		p.Code = int32(e.Code)
		p.Message = string(e.appendExplanation(nil, false))
		st := status.FromProto(p)
		e.st.Store(st)
		return st
	}
	st := e.statuses.get(e)
	e.st.Store(st)
	return st
}

// statusCache holds the statuses of a Client's DeadlineErrors, by what their
// message says. Reads take no lock: the map is replaced, never changed.
type statusCache struct {
	m  atomic.Pointer[map[statusKey]*status.Status]
	mu sync.Mutex // for writers
}

// statusCacheSize bounds a Client's statusCache: messages that carry a
// server's varying text are built anew once it is full.
const statusCacheSize = 128

// statusKey is what a DeadlineError's status message is made of.
type statusKey struct {
	code, lastCode codes.Code
	budget         time.Duration // rounded as the message shows it
	source         DeadlineSource
	phase          Phase
	attempts       int
	grpcRetries    bool
	detail         string
}

// get returns the status for e, built once per distinct message while
// there is room; a nil cache builds it every time.
func (c *statusCache) get(e *DeadlineError) *status.Status {
	if c == nil {
		return status.New(e.Code, string(e.appendExplanation(nil, false)))
	}
	k := statusKey{
		code: e.Code, lastCode: e.LastCode, budget: round(e.Budget), source: e.Source, phase: e.Phase,
		attempts: e.Attempts, grpcRetries: e.GRPCRetries, detail: e.Detail,
	}
	if m := c.m.Load(); m != nil {
		if st, ok := (*m)[k]; ok {
			return st
		}
	}
	st := status.New(e.Code, string(e.appendExplanation(nil, false)))
	c.mu.Lock()
	defer c.mu.Unlock()
	var m map[statusKey]*status.Status
	if old := c.m.Load(); old != nil {
		if st, ok := (*old)[k]; ok {
			return st // built meanwhile
		}
		if len(*old) >= statusCacheSize {
			return st
		}
		m = maps.Clone(*old)
	} else {
		m = make(map[statusKey]*status.Status)
	}
	m[k] = st
	c.m.Store(&m)
	return st
}

// Is reports whether target is the context error matching e's code, so that
// errors.Is(err, context.DeadlineExceeded) holds for a deadline.
func (e *DeadlineError) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	case context.Canceled:
		return e.Code == codes.Canceled
	}
	return false
}

// Unwrap returns the error grpc returned for the last attempt.
func (e *DeadlineError) Unwrap() error { return e.err }

// errorInfoDomain marks the error details greeter servers attach, so that
// greeter clients can tell the server's own deadline from theirs.
const errorInfoDomain = "greeter.grpc-greeter.github.com"

// Reasons in the ErrorInfo detail a greeter server attaches when it ends a
// call for a deadline of its own.
const (
	reasonServerCap     = "SERVER_DEADLINE_CAP"
	reasonMinBudget     = "BUDGET_BELOW_MINIMUM"
	reasonServerDefault = "SERVER_DEFAULT_DEADLINE"
)

// DefaultMaxAttempts is how many attempts [WithPerAttemptTimeout] makes when
// given a maxAttempts of zero.
const DefaultMaxAttempts = 3

// Retry backoff of WithPerAttemptTimeout: exponential from retryBackoff,
// capped, with ±20% jitter as grpc's own retry does.
const (
	retryBackoff    = 25 * time.Millisecond
	retryBackoffMax = time.Second
)

// WithPerAttemptTimeout gives each attempt of a unary call at most d,
// min(d, what is left of the call's deadline), and retries an attempt that
// ran out of its own time, or ended Unavailable, up to maxAttempts attempts
// in all (0 means [DefaultMaxAttempts]), with exponential backoff from 25ms.
// Retries never start or sleep past the call's overall deadline: when the
// backoff would, the call ends at once with the last attempt's error. The
// final error keeps the last attempt's code; a [DeadlineError] counts the
// attempts. By default there is no per-attempt timeout and one attempt.
//
// grpc's service-config retry policy has no per-attempt timeout, so this
// option takes its place: the client's service-config retries (those of
// [DefaultServiceConfig] included) are turned off with grpc.WithDisableRetry,
// because two retry layers would multiply attempts and let grpc's backoff
// eat an attempt's time. grpc's transparent retries of calls that never
// reached a server still happen.
func WithPerAttemptTimeout(d time.Duration, maxAttempts int) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		c.deadline.perAttempt = d
		c.deadline.maxAttempts = maxAttempts
		c.deadline.perAttemptSet = true
	})
}

// WithStreamIdleTimeout ends a stream on which no message has been sent or
// received for d, with DeadlineExceeded and a [DeadlineError] whose Source is
// [SourceStreamIdle]. Each message resets the clock, so a long stream that
// keeps moving needs no whole-stream deadline. It applies to every stream,
// with a deadline or not; a d of zero turns idle timeouts off, the default
// one included.
//
// By default a stream whose context has no deadline gets the client's
// default timeout ([WithDefaultTimeout], [DefaultTimeout]) as its idle
// timeout, so that no call runs unbounded unless the importer opts out; a
// stream with a deadline gets none.
func WithStreamIdleTimeout(d time.Duration) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.deadline.streamIdle, c.deadline.streamIdleSet = d, true })
}

// deadlineOptions holds the client's deadline options beyond the default
// timeout.
type deadlineOptions struct {
	perAttempt    time.Duration
	maxAttempts   int
	perAttemptSet bool
	streamIdle    time.Duration
	streamIdleSet bool
}

func (o *deadlineOptions) validate() error {
	if o.perAttemptSet {
		if o.perAttempt <= 0 {
			return fmt.Errorf("greeter: WithPerAttemptTimeout(%v, %d): timeout must be positive", o.perAttempt, o.maxAttempts)
		}
		if o.maxAttempts < 0 {
			return fmt.Errorf("greeter: WithPerAttemptTimeout(%v, %d): maxAttempts must not be negative", o.perAttempt, o.maxAttempts)
		}
		if o.maxAttempts == 0 {
			o.maxAttempts = DefaultMaxAttempts
		}
	}
	if o.streamIdleSet && o.streamIdle < 0 {
		return fmt.Errorf("greeter: WithStreamIdleTimeout(%v): must not be negative (0 turns idle timeouts off)", o.streamIdle)
	}
	return nil
}

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
	growStack()
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
	if err := ctx.Err(); err != nil {
		// grpc would not send it either; failing here makes the phase
		// certain and costs the server nothing.
		cs.phase = PhaseBeforeSend
		return c.explain(ctx, &cs, status.FromContextError(err).Err())
	}
	if c.deadline.perAttempt > 0 {
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
	per := c.deadline.perAttempt
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
		if attempt > 1 {
			// As grpc's own retries do: servers (WithFailFirst among
			// them) tell a retry from a new call.
			actx = metadata.AppendToOutgoingContext(actx, previousAttemptsHeader, strconv.Itoa(attempt-1))
		}
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
		if !retryable || attempt >= c.deadline.maxAttempts || contextErr(ctx) != nil {
			return c.explain(ctx, cs, err)
		}
		backoff := min(retryBackoff<<(attempt-1), retryBackoffMax)
		backoff = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= backoff {
			// Sleeping would end past the deadline, with no time left
			// for the attempt it waits for: give up now, keeping the
			// last attempt's code, rather than fail later.
			cs.note = fmt.Sprintf("not retried: %v left, backoff %v", round(time.Until(dl)), round(backoff))
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
		statuses: &c.statuses,
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
		if !ok || info.GetDomain() != errorInfoDomain {
			continue
		}
		fromServer = true
		switch info.GetReason() {
		case reasonServerCap:
			if ctxErr == nil || cs.source == SourceNone {
				e.Source = SourceServerCap
				if d, err := time.ParseDuration(info.GetMetadata()["cap"]); err == nil {
					e.Budget = d
				}
			}
		case reasonServerDefault:
			e.Source = SourceServerDefault
			if d, err := time.ParseDuration(info.GetMetadata()["default"]); err == nil {
				e.Budget = d
			}
		}
	}
	if e.Phase == 0 {
		e.Phase = c.phase(st, ctxErr, fromServer)
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
	switch {
	case e.Phase == PhaseBeforeSend:
	case cs.note != "":
		e.Detail = cs.note
	case code == codes.Canceled && ctxErr == nil:
		e.Detail = st.Message() // the client was closed, or the server cancelled
	case fromServer || e.Phase == PhaseConnecting:
		e.Detail = st.Message()
		if e.Phase == PhaseConnecting && !strings.Contains(e.Detail, "latest balancer error") && c.conn.GetState() == connectivity.TransientFailure {
			// grpc said only "context deadline exceeded": the channel's
			// state says why no connection came.
			e.Detail += " (the channel is in TRANSIENT_FAILURE: connecting to the server failed)"
		}
	}
	return e
}

// phase infers where a call was from what grpc reports: the picker's
// message when it was still waiting for a connection, else the channel's
// state at the end.
func (c *Client) phase(st *status.Status, ctxErr error, fromServer bool) Phase {
	if fromServer {
		return PhaseServer
	}
	msg := st.Message()
	if strings.Contains(msg, "waiting for connections to become ready") || strings.Contains(msg, "latest balancer error") || strings.Contains(msg, "name resolver") {
		return PhaseConnecting
	}
	if ctxErr != nil {
		switch c.conn.GetState() {
		case connectivity.Connecting, connectivity.TransientFailure:
			return PhaseConnecting
		}
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
	growStack()
	cs := callState{start: time.Now(), method: method, source: SourceCaller, attempts: 1}
	idle := c.deadline.streamIdle
	if dl, ok := ctx.Deadline(); ok {
		cs.budget = dl.Sub(cs.start)
	} else {
		cs.source = SourceNone
		if !c.deadline.streamIdleSet {
			// Unbounded only by the importer's choice: the default
			// timeout, which a whole stream would outgrow, bounds its
			// silences instead.
			idle = c.timeout
		}
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
			statuses: &s.c.statuses,
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
