// Package guard enforces a server's deadline policy on the calls of one
// service: a default budget for calls that arrive without a deadline, a
// cap on longer ones, a minimum budget below which a call is refused at
// once. Its handlers see ctx.Err() == context.DeadlineExceeded when their
// deadline passed (never Canceled), the caller gets a status that says whose
// deadline it was (an ErrorInfo with the reasons of package wire), and
// handlers that run on after their context ended are counted and logged.
//
// A [Guard] gives plain grpc interceptors, which greeter binds to its
// service's methods.
package guard

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-greeter/greeter/internal/observe"
	"github.com/grpc-greeter/greeter/internal/wire"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Policy is the rule for the budgets of a method's calls; a zero field is
// off. It must be valid: no negative field, Default and MinBudget at most
// Max when Max is set, MinBudget at most Default when Default is set.
type Policy struct {
	Default, Max, MinBudget time.Duration
}

// Config configures a Guard.
type Config struct {
	// Services are the full names of the services whose methods the
	// guard's InTapHandle polices ("Greeter").
	Services []string
	// Policy applies to every method not in Methods.
	Policy Policy
	// Methods holds the policies of single methods, by full name
	// ("/Greeter/SayHello") or method name ("SayHello").
	Methods map[string]Policy
	// Grace is how long a handler may run on after its context ended
	// before it is counted and logged; it must be positive.
	Grace time.Duration
	// Logger gets the guard's diagnostics; it must not be nil.
	Logger *slog.Logger
	// Metrics counts deadline expiries by the budget's source and
	// overruns by method; nil counts nothing.
	Metrics *observe.ServerMetrics
	// Notes says calls carry an observe.Note (the server logs or traces
	// them), which the guard fills in with the budget it applied.
	Notes bool
}

// New returns a Guard for cfg. [Guard.Stop] it when its server has stopped.
func New(cfg Config) *Guard {
	g := &Guard{services: cfg.Services, policy: cfg.Policy, methods: cfg.Methods, logger: cfg.Logger, metrics: cfg.Metrics, notes: cfg.Notes, grace: cfg.Grace, epoch: time.Now()}
	g.sweeper = time.AfterFunc(time.Hour, g.sweep)
	g.sweeper.Stop()
	return g
}

// Overruns returns how many handlers have run on longer than the grace
// after their context ended.
func (g *Guard) Overruns() int64 { return g.overruns.Load() }

// deadlineTolerance is how close to its deadline a call may be cancelled
// and still be reported as DeadlineExceeded: see exactContext. The server
// dates a deadline from when it reads the request's headers, so the
// client's RST_STREAM, sent at the same deadline by the client's clock,
// comes in early by however much longer the headers took than the reset:
// 5-8ms on two busy cores under the race detector. A caller that really
// cancels this close to its deadline is reported as out of time, which it
// nearly was.
const deadlineTolerance = 25 * time.Millisecond

// Guard runs a deadline policy around every handler of a service and keeps
// track of the handlers running. Build one with [New]; its zero value is
// not usable.
type Guard struct {
	services []string
	policy   Policy
	methods  map[string]Policy
	logger   *slog.Logger
	metrics  *observe.ServerMetrics
	notes    bool
	grace    time.Duration
	overruns atomic.Int64
	stopping atomic.Bool // Shutdown is cancelling the calls left

	// The handlers running, in lists spread over shards so that calls
	// starting and ending together do not all wait for one lock.
	shards [guardShards]guardShard
	next   atomic.Uint32 // the shard of the next call

	// sweeper looks for overruns in the lists, every sweepPeriod while
	// there are calls whose context has ended or has a deadline; armed
	// says it is pending.
	sweeper *time.Timer
	armed   atomic.Bool
	epoch   time.Time  // the origin of guardedCall.ended, on the monotonic clock
	sweepMu sync.Mutex // orders arming after stop
	stopped bool       // under sweepMu: the server has stopped
}

const guardShards = 16

type guardShard struct {
	mu      sync.Mutex
	running *guardedCall // a list through prev and next
}

type guardedCall struct {
	// ctx is the handler's context for a call with a deadline: part of
	// the call so that a call costs one allocation.
	ctx        exactContext
	method     string
	start      time.Time
	shard      *guardShard
	prev, next *guardedCall // in shard.running, under shard.mu
	// unwatch stops the watch on the context of a call without deadline
	// (see begin); nil for a call with one.
	unwatch func() bool
	// cancel ends the handler's context of a call whose deadline the
	// server set; nil for the others.
	cancel context.CancelFunc
	// ended is when the handler's context ended, or will (its deadline),
	// as guard.since gives it; 0 while a call without deadline goes on.
	ended   atomic.Int64
	counted atomic.Bool // counted as an overrun
}

func (g *Guard) policyFor(fullMethod string) Policy {
	if p, ok := g.methods[fullMethod]; ok {
		return p
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i >= 0 {
		if p, ok := g.methods[fullMethod[i+1:]]; ok {
			return p
		}
	}
	return g.policy
}

// budget is what the policy made of a call's deadline.
type budget struct {
	deadline time.Time
	has      bool
	capped   time.Duration // the server's cap, when it shortened the budget
	dflt     time.Duration // the server's default, when the call had none
	source   string        // for logs: "client", "server default", "server cap"
}

// label is b's source as greeter's instruments, access log and spans
// name it.
func (b budget) label() string {
	switch {
	case b.dflt > 0:
		return observe.SourceServerDefault
	case b.capped > 0:
		return observe.SourceServerCap
	case b.has:
		return observe.SourceClient
	}
	return observe.SourceNone
}

// budgetFor applies p to a call whose context is ctx, at now.
func budgetFor(ctx context.Context, p Policy, now time.Time) budget {
	b := budget{source: "client"}
	b.deadline, b.has = ctx.Deadline()
	switch {
	case !b.has && p.Default > 0:
		b.deadline, b.has, b.dflt, b.source = now.Add(p.Default), true, p.Default, "server default"
	case !b.has && p.Max > 0, b.has && p.Max > 0 && b.deadline.Sub(now) > p.Max:
		b.deadline, b.has, b.capped, b.source = now.Add(p.Max), true, p.Max, "server cap"
	}
	return b
}

// tapped is what InTapHandle made of a stream's deadline, for begin.
type tapped struct {
	b budget
	// cancel is the deadline's; grpc releases it with the stream's
	// context, its parent, when the stream ends.
	cancel context.CancelFunc
}

type tapKey struct{}

// InTapHandle applies the policy's default and cap to the streams of the
// guard's services as they open, before their first message. The handler's
// context ends at the policy's deadline, as without it; grpc's own stream
// context ends half the grace later (time for the handler to return and the
// guard to explain the end, which grpc's own end would not), so that a
// stream that never sends its request, or whose handler is blocked sending
// to a client that stopped reading, is ended by the server too, before it
// would count as an overrun. Install it with grpc.InTapHandle on the server
// the guard's interceptors serve; without it, the interceptors apply the
// policy from the first message on.
func (g *Guard) InTapHandle() tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if !g.serves(info.FullMethodName) {
			return ctx, nil
		}
		b := budgetFor(ctx, g.policyFor(info.FullMethodName), time.Now())
		if b.capped == 0 && b.dflt == 0 {
			return ctx, nil // the client's own deadline, or none
		}
		t := &tapped{b: b}
		ctx, t.cancel = context.WithDeadline(ctx, b.deadline.Add(g.grace/2))
		return context.WithValue(ctx, tapKey{}, t), nil
	}
}

// serves reports whether fullMethod is a method of the guard's services.
func (g *Guard) serves(fullMethod string) bool {
	for _, s := range g.services {
		if len(fullMethod) > len(s)+2 && fullMethod[0] == '/' && fullMethod[len(s)+1] == '/' && fullMethod[1:len(s)+1] == s {
			return true
		}
	}
	return false
}

// begin applies the policy to a call arriving with ctx. It returns the
// handler's context and the call, which the caller must end, or the status
// refusing the call.
func (g *Guard) begin(ctx context.Context, method string) (context.Context, *guardedCall, budget, error) {
	p := g.policyFor(method)
	now := time.Now()
	var b budget
	t, fromTap := ctx.Value(tapKey{}).(*tapped)
	if fromTap {
		b = t.b // ctx's deadline is half the grace later
	} else {
		b = budgetFor(ctx, p, now)
	}
	var note *observe.Note
	if g.notes {
		note = observe.NoteFrom(ctx)
	}
	if note != nil {
		note.Source, note.Budget = b.label(), 0
		if b.has {
			note.Budget = b.deadline.Sub(now)
		}
	}
	if left := b.deadline.Sub(now); b.has && p.MinBudget > 0 && left < p.MinBudget {
		if note != nil {
			note.Source = observe.SourceMinBudget
		}
		g.metrics.DeadlineExceeded(ctx, method, observe.SourceMinBudget)
		g.logger.LogAttrs(ctx, slog.LevelInfo, "call refused: budget below minimum",
			slog.String("method", method), slog.Duration("left", wire.Round(left)), slog.Duration("min", p.MinBudget))
		st, _ := status.New(codes.DeadlineExceeded, fmt.Sprintf("greeter: %s needs at least %v of budget, the call has %v left", method, p.MinBudget, wire.Round(max(left, 0)))).
			WithDetails(&errdetails.ErrorInfo{Domain: wire.ErrorInfoDomain, Reason: wire.ReasonMinBudget, Metadata: map[string]string{wire.MetaMin: p.MinBudget.String()}})
		return nil, nil, b, st.Err()
	}
	call := &guardedCall{method: method, start: now}
	hctx := ctx
	if b.has {
		hctx, call.cancel = call.ctx.init(ctx, b.deadline, b.capped == 0 && b.dflt == 0)
	}
	sh := &g.shards[g.next.Add(1)%guardShards]
	call.shard = sh
	sh.mu.Lock()
	call.next = sh.running
	if sh.running != nil {
		sh.running.prev = call
	}
	sh.running = call
	sh.mu.Unlock()
	if b.has {
		// No timer of its own: the sweeper looks at the call from grace
		// after its deadline on, and nothing runs for it at the deadline
		// itself, when many calls may end together and every microsecond
		// of CPU delays the others' ends (BenchmarkDeadlinePrecision). A
		// call its caller cancels earlier is counted then too. Set after
		// the listing, so that a sweep that disarms sees it (armSweep).
		call.ended.Store(g.since(b.deadline))
		g.armSweep()
	} else {
		// Without a deadline the context ends only when the caller goes
		// away or the server stops: the watch starts the overrun clock
		// then. A call that returns first only registers and
		// unregisters it.
		call.unwatch = context.AfterFunc(hctx, func() { g.contextEnded(call) })
	}
	return hctx, call, b, nil
}

// end ends a call begun by begin, once its handler has returned.
func (g *Guard) end(c *guardedCall) {
	g.handlerReturned(c) // first: the cancel below must not fire the watch
	if c.cancel != nil {
		c.cancel()
	}
}

// init makes c a handler's context that ends with parent, or at dl if that
// comes first, and says DeadlineExceeded when it ended at the deadline,
// whichever side's timer fired first. parentsOwn says dl is parent's own
// deadline, which needs no timer of ours, and then no cancel either (nil).
func (c *exactContext) init(parent context.Context, dl time.Time, parentsOwn bool) (context.Context, context.CancelFunc) {
	c.Context, c.deadline = parent, dl
	var cancel context.CancelFunc
	if !parentsOwn {
		c.Context, cancel = context.WithDeadline(parent, dl)
	}
	return c, cancel
}

// exactContext corrects one error of grpc's: a client's RST_STREAM, sent
// when its own deadline fires, reaches the server about when the server's
// timer for the same deadline fires, and when it comes first grpc ends the
// handler's context with Canceled. exactContext reports DeadlineExceeded for
// a cancellation within deadlineTolerance of the deadline. It ends exactly
// when grpc's context does: no timer, no goroutine, no added lag.
type exactContext struct {
	context.Context
	deadline time.Time
	verdict  atomic.Int32 // 0: not yet decided; 1: deadline; 2: canceled
}

func (c *exactContext) Err() error {
	// Once decided, the answer stands: no walk up grpc's chain of
	// contexts, which the handler and the guard both ask at the end.
	switch c.verdict.Load() {
	case 1:
		return context.DeadlineExceeded
	case 2:
		return context.Canceled
	}
	err := c.Context.Err()
	if err == context.DeadlineExceeded {
		c.verdict.CompareAndSwap(0, 1)
	}
	if err != context.Canceled {
		return err
	}
	// Decided once, on first sight of the cancellation: a handler looks
	// at Err as soon as Done closes, and so does the guard when the
	// handler returns. (A handler that ignores Done and looks long after
	// its caller left, past the deadline, is told DeadlineExceeded.)
	v := int32(2)
	if time.Until(c.deadline) <= deadlineTolerance {
		v = 1
	}
	c.verdict.CompareAndSwap(0, v)
	if c.verdict.Load() == 1 {
		return context.DeadlineExceeded
	}
	return context.Canceled
}

// contextEnded runs when the context of a call without deadline ends while
// its handler is still running: it starts the overrun clock.
func (g *Guard) contextEnded(c *guardedCall) {
	c.ended.Store(g.since(time.Now()))
	g.armSweep()
}

// since is t in nanoseconds since the guard's epoch, at least 1: times
// compared on the monotonic clock, in a word a call can hold atomically.
func (g *Guard) since(t time.Time) int64 {
	return max(int64(t.Sub(g.epoch)), 1)
}

// sweepPeriod is how often the sweeper looks: an overrun is caught between
// grace and grace plus a period after its context ended.
func (g *Guard) sweepPeriod() time.Duration {
	return max(g.grace/2, minSweepPeriod)
}

// minSweepPeriod bounds how often the sweeper wakes for a tiny grace.
const minSweepPeriod = 5 * time.Millisecond

// armSweep makes sure a sweep is pending. A sweep disarms before it looks,
// and a call is listed before it arms: each call is seen by a sweep.
func (g *Guard) armSweep() {
	if g.armed.Load() || !g.armed.CompareAndSwap(false, true) {
		return
	}
	g.sweepMu.Lock()
	defer g.sweepMu.Unlock()
	if !g.stopped {
		g.sweeper.Reset(g.sweepPeriod())
	}
}

// sweep counts and logs the handlers still running grace after their
// context ended, each once, and comes back while calls that may yet
// overrun are running. One timer for the server instead of one per call:
// calls start and end without touching the runtime's timers.
func (g *Guard) sweep() {
	g.armed.Store(false)
	now := time.Now()
	nowNs := g.since(now)
	type overrun struct {
		method        string
		since, ranFor time.Duration
	}
	var found []overrun
	pending := false
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for c := sh.running; c != nil; c = c.next {
			e := c.ended.Load()
			if e == 0 || c.counted.Load() {
				continue
			}
			if since := time.Duration(nowNs - e); since >= g.grace && c.counted.CompareAndSwap(false, true) {
				found = append(found, overrun{c.method, since, now.Sub(c.start)})
				continue
			}
			pending = true
		}
		sh.mu.Unlock()
	}
	for _, o := range found {
		g.overruns.Add(1)
		g.metrics.Overrun(o.method)
		g.logger.Warn("handler still running after its context ended",
			"method", o.method, "since_end", wire.Round(o.since), "running", wire.Round(o.ranFor))
	}
	if pending {
		g.armSweep()
	}
}

// Stop stops the sweeper once the server has stopped.
func (g *Guard) Stop() {
	g.sweepMu.Lock()
	defer g.sweepMu.Unlock()
	g.stopped = true
	g.sweeper.Stop()
}

func (g *Guard) handlerReturned(c *guardedCall) {
	if c.unwatch != nil {
		c.unwatch()
	}
	g.unlist(c)
	// One that returns late but before a sweep saw it.
	if e := c.ended.Load(); e != 0 && !c.counted.Load() {
		if since := time.Duration(g.since(time.Now()) - e); since >= g.grace && c.counted.CompareAndSwap(false, true) {
			g.overruns.Add(1)
			g.metrics.Overrun(c.method)
			g.logger.Warn("handler returned late, after its context ended", "method", c.method, "since_end", wire.Round(since))
		}
	}
}

// unlist takes c off its shard's list of running handlers.
func (g *Guard) unlist(c *guardedCall) {
	sh := c.shard
	sh.mu.Lock()
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		sh.running = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	sh.mu.Unlock()
}

// stuck names the handlers still running, for Shutdown.
func (g *Guard) stuck() []string {
	var names []string
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for c := sh.running; c != nil; c = c.next {
			names = append(names, fmt.Sprintf("%s (running %v)", c.method, wire.Round(time.Since(c.start))))
		}
		sh.mu.Unlock()
	}
	sort.Strings(names)
	return names
}

// ReportStuck marks the calls left as cancelled by shutdown and logs the
// handlers still running when a server's shutdown forces the stop; they
// ignored the end of their context, or their callers set no deadline.
func (g *Guard) ReportStuck() {
	g.stopping.Store(true)
	if names := g.stuck(); len(names) > 0 {
		g.logger.Warn("shutdown: grace period over, stopping handlers still running", "handlers", names)
	}
}

// finish turns the handler's error into the status the caller gets and
// logs the end of a call cut short by its deadline or its caller.
func (g *Guard) finish(ctx context.Context, ctxErr error, method string, b budget, call *guardedCall, err error, setTrailer func(metadata.MD)) error {
	if b.capped > 0 {
		setTrailer(metadata.Pairs(wire.TrailerDeadlineCap, b.capped.String()))
	}
	if err == nil || ctxErr == nil {
		return err
	}
	if code := status.Code(err); code != codes.Canceled && code != codes.DeadlineExceeded && code != codes.Unknown {
		return err // the handler's own answer
	}
	// Many calls can end together: with logging off, build nothing and
	// read no clock. ctxErr is the handler context's own Err: one of the
	// two context errors, unwrapped.
	logOn := g.logger.Enabled(ctx, slog.LevelInfo)
	if ctxErr != context.DeadlineExceeded {
		msg, st := "call canceled by the caller", errCallerCanceled
		if g.stopping.Load() {
			msg, st = "call canceled by shutdown", errShuttingDown
		}
		if logOn {
			g.logger.LogAttrs(ctx, slog.LevelInfo, msg,
				slog.String("method", method), slog.Duration("after", wire.Round(time.Since(call.start))))
		}
		return st
	}
	if logOn {
		g.logger.LogAttrs(ctx, slog.LevelInfo, "deadline exceeded",
			slog.String("method", method), slog.String("budget_from", b.source),
			slog.Duration("budget", wire.Round(b.deadline.Sub(call.start))), slog.Duration("after", wire.Round(time.Since(call.start))))
	}
	// The cap ran out, unless the caller left first. (With InTapHandle,
	// grpc's own context ended at the cap too.)
	if b.capped > 0 && ctx.Err() != context.Canceled {
		g.metrics.DeadlineExceeded(ctx, method, observe.SourceServerCap)
		st, _ := status.New(codes.DeadlineExceeded, fmt.Sprintf("greeter: the server's cap of %v for %s ran out", b.capped, method)).
			WithDetails(&errdetails.ErrorInfo{Domain: wire.ErrorInfoDomain, Reason: wire.ReasonServerCap, Metadata: map[string]string{wire.MetaCap: b.capped.String()}})
		return st.Err()
	}
	if b.dflt > 0 {
		g.metrics.DeadlineExceeded(ctx, method, observe.SourceServerDefault)
		st, _ := status.New(codes.DeadlineExceeded, fmt.Sprintf("greeter: the call had no deadline and the server's default of %v for %s ran out", b.dflt, method)).
			WithDetails(&errdetails.ErrorInfo{Domain: wire.ErrorInfoDomain, Reason: wire.ReasonServerDefault, Metadata: map[string]string{wire.MetaDefault: b.dflt.String()}})
		return st.Err()
	}
	g.metrics.DeadlineExceeded(ctx, method, observe.SourceClient)
	return errServerDeadline
}

// The guard's own statuses; immutable, so shared.
var (
	errServerDeadline = status.Error(codes.DeadlineExceeded, "greeter: deadline exceeded on the server")
	errCallerCanceled = status.Error(codes.Canceled, "greeter: call canceled by the caller")
	errShuttingDown   = status.Error(codes.Unavailable, "greeter: server shutting down")
)

// UnaryServerInterceptor applies the policy to each unary call.
func (g *Guard) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		hctx, call, b, err := g.begin(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		var ctxErr error
		resp, err := func() (any, error) {
			defer g.end(call)
			defer func() { ctxErr = hctx.Err() }() // before end cancels hctx
			return handler(hctx, req)
		}()
		err = g.finish(ctx, ctxErr, info.FullMethod, b, call, err, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// StreamServerInterceptor applies the policy to each stream.
func (g *Guard) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		hctx, call, b, err := g.begin(ctx, info.FullMethod)
		if err != nil {
			return err
		}
		gs := &stream{ServerStream: ss, ctx: hctx}
		if pdl, ok := ctx.Deadline(); b.has && info.IsClientStream && (!ok || b.deadline.Before(pdl)) {
			// grpc's RecvMsg ends with grpc's context, not ours: without
			// help a handler blocked in Recv would outlive the server's
			// own deadline.
			gs.recvGuard = true
		}
		var ctxErr error
		err = func() error {
			defer g.end(call)
			defer func() { ctxErr = hctx.Err() }() // before end cancels hctx
			return handler(srv, gs)
		}()
		return g.finish(ctx, ctxErr, info.FullMethod, b, call, err, ss.SetTrailer)
	}
}

// stream hands the handler its policed context.
type stream struct {
	grpc.ServerStream
	ctx       context.Context
	recvGuard bool
}

func (s *stream) Context() context.Context { return s.ctx }

func (s *stream) RecvMsg(m any) error {
	if !s.recvGuard {
		return s.ServerStream.RecvMsg(m)
	}
	if s.ctx.Err() != nil {
		return status.FromContextError(s.ctx.Err()).Err()
	}
	res := make(chan error, 1)
	go func() { res <- s.ServerStream.RecvMsg(m) }()
	select {
	case err := <-res:
		return err
	case <-s.ctx.Done():
		// The receive returns once grpc ends the stream, right after the
		// handler returns; the handler must not touch m again.
		return status.FromContextError(s.ctx.Err()).Err()
	}
}
