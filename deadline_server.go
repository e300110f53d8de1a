package greeter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DeadlinePolicy is a server's rule for the budgets of the calls it serves.
// A zero field is off; the zero DeadlinePolicy changes no budget but still
// makes the server report deadlines exactly (see [WithServerDeadlines]).
type DeadlinePolicy struct {
	// Default is the budget given to a call that arrives with no deadline,
	// so that a client that set none cannot pin the server. Zero: such
	// calls run with no deadline unless Max is set.
	Default time.Duration
	// Max clamps longer budgets, and calls with no deadline when Default is
	// zero. A call that runs out of the server's cap ends with
	// DeadlineExceeded, an ErrorInfo detail (reason SERVER_DEADLINE_CAP,
	// metadata "cap") and the trailer greeter-deadline-cap, so that the
	// client can tell the server's deadline from its own.
	Max time.Duration
	// MinBudget refuses at once, with DeadlineExceeded, a call arriving with
	// less time left than this, instead of starting work it cannot finish.
	MinBudget time.Duration
}

func (p DeadlinePolicy) validate(where string) error {
	switch {
	case p.Default < 0 || p.Max < 0 || p.MinBudget < 0:
		return fmt.Errorf("greeter: %s: negative duration in %+v", where, p)
	case p.Max > 0 && p.Default > p.Max:
		return fmt.Errorf("greeter: %s: Default %v exceeds Max %v", where, p.Default, p.Max)
	case p.Max > 0 && p.MinBudget > p.Max:
		return fmt.Errorf("greeter: %s: MinBudget %v exceeds Max %v: every call would be refused", where, p.MinBudget, p.Max)
	case p.Default > 0 && p.MinBudget > p.Default:
		return fmt.Errorf("greeter: %s: MinBudget %v exceeds Default %v: calls without deadline would be refused", where, p.MinBudget, p.Default)
	}
	return nil
}

// TrailerDeadlineCap is the trailer in which a server reports the cap it put
// on a call's budget ([DeadlinePolicy].Max), as a Go duration ("2s"), for
// clients in any language.
const TrailerDeadlineCap = "greeter-deadline-cap"

// DefaultOverrunGrace is how long a handler may keep running after its
// context ended before the server counts and logs it, unless changed with
// [WithOverrunGrace].
const DefaultOverrunGrace = 100 * time.Millisecond

// deadlineTolerance is how close to its deadline a call may be cancelled
// and still be reported as DeadlineExceeded: see exactContext. The server
// dates a deadline from when it reads the request's headers, so the
// client's RST_STREAM, sent at the same deadline by the client's clock,
// comes in early by however much longer the headers took than the reset:
// 5-8ms on two busy cores under the race detector. A caller that really
// cancels this close to its deadline is reported as out of time, which it
// nearly was.
const deadlineTolerance = 25 * time.Millisecond

// WithServerDeadlines sets the server's deadline policy for every method:
// see [DeadlinePolicy]. It also turns on the deadline guard, which costs a
// little per call and is off by default: handlers whose context ends because
// the deadline passed see ctx.Err() == context.DeadlineExceeded (never
// Canceled) and the status and log say DeadlineExceeded; handlers that run
// on after their context ended are counted and logged ([WithOverrunGrace]).
// The default is no policy and no guard.
func WithServerDeadlines(p DeadlinePolicy) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		c.deadline.on = true
		c.deadline.policy = p
	})
}

// WithMethodDeadlines sets the deadline policy of one method, by its name
// ("SayHello", under both service names) or its full name
// ("/Greeter/SayHello"), in place of the server-wide one. It turns on the
// deadline guard as [WithServerDeadlines] does.
func WithMethodDeadlines(method string, p DeadlinePolicy) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		c.deadline.on = true
		if c.deadline.methods == nil {
			c.deadline.methods = map[string]DeadlinePolicy{}
		}
		c.deadline.methods[method] = p
	})
}

// WithDelay makes the built-in handlers work for d before each reply (each
// reply of a stream), waiting on a timer or on the end of their context,
// whichever comes first: simulated work that stops the moment the caller
// goes away, to show every deadline scenario. It turns on the deadline guard
// as [WithServerDeadlines] does. The default is no delay.
func WithDelay(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadline.on, c.deadline.delay = true, d })
}

// WithOverrunGrace sets how long a handler may run on after its context
// ended before the server counts it ([Server.Overruns]) and logs it at Warn
// with its method: grace after its deadline for a call with one (also when
// its caller left earlier), grace after its caller left for a call without.
// The server looks every half grace (no more often than every 5ms) while
// such calls run, so a handler is counted between grace and one and a half
// grace after that (grace plus 5ms for a grace under 10ms), or when it
// returns if that comes first.
// [Server.Shutdown] also names every handler still running when it forces
// the stop. It turns on the deadline guard as [WithServerDeadlines] does;
// the default grace is [DefaultOverrunGrace].
func WithOverrunGrace(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadline.on, c.deadline.grace = true, d })
}

// Remaining returns the time left before ctx's deadline, and false when ctx
// has none. In a greeter handler it is the budget after the server's policy.
func Remaining(ctx context.Context) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return time.Until(dl), true
}

// Overruns returns how many handlers have kept running longer than the
// overrun grace after their context ended; always 0 without the deadline
// guard.
func (s *Server) Overruns() int64 {
	if s.guard == nil {
		return 0
	}
	return s.guard.overruns.Load()
}

// serverDeadlines is the server's deadline configuration and, once built,
// its guard.
type serverDeadlines struct {
	on       bool
	policy   DeadlinePolicy
	methods  map[string]DeadlinePolicy
	delay    time.Duration
	grace    time.Duration
	upstream *relay
	// hook, for tests only, runs in the handler before the work.
	hook func(ctx context.Context, method string) error
}

func (d *serverDeadlines) validate() error {
	if err := d.policy.validate("WithServerDeadlines"); err != nil {
		return err
	}
	for m, p := range d.methods {
		if m == "" {
			return errors.New("greeter: WithMethodDeadlines: empty method name")
		}
		if err := p.validate(fmt.Sprintf("WithMethodDeadlines(%q)", m)); err != nil {
			return err
		}
	}
	if d.delay < 0 {
		return fmt.Errorf("greeter: WithDelay(%v): must not be negative", d.delay)
	}
	if d.grace < 0 {
		return fmt.Errorf("greeter: WithOverrunGrace(%v): must not be negative", d.grace)
	}
	if d.upstream != nil {
		return d.upstream.validate()
	}
	return nil
}

// guard runs the deadline policy around every Greeter handler and keeps
// track of the handlers running.
type guard struct {
	cfg      *serverDeadlines
	logger   *slog.Logger
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
	_       [48]byte     // 64 bytes, a cache line, each
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

// newGuard returns the guard for cfg, or nil when the deadline options are
// all off, so that a default server pays nothing per call.
func newGuard(cfg *serverConfig) *guard {
	if !cfg.deadline.on {
		return nil
	}
	g := &guard{cfg: &cfg.deadline, logger: cfg.logger, grace: DefaultOverrunGrace}
	if cfg.deadline.grace > 0 {
		g.grace = cfg.deadline.grace
	}
	g.epoch = time.Now()
	g.sweeper = time.AfterFunc(time.Hour, g.sweep)
	g.sweeper.Stop()
	if cfg.deadline.upstream != nil {
		cfg.deadline.upstream.logger = cfg.logger
	}
	return g
}

func (g *guard) policyFor(fullMethod string) DeadlinePolicy {
	if p, ok := g.cfg.methods[fullMethod]; ok {
		return p
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i >= 0 {
		if p, ok := g.cfg.methods[fullMethod[i+1:]]; ok {
			return p
		}
	}
	return g.cfg.policy
}

// budget is what the policy made of a call's deadline.
type budget struct {
	deadline time.Time
	has      bool
	capped   time.Duration // the server's cap, when it shortened the budget
	dflt     time.Duration // the server's default, when the call had none
	source   string        // for logs: "client", "server default", "server cap"
}

// begin applies the policy to a call arriving with ctx. It returns the
// handler's context and the call, which the caller must end, or the status
// refusing the call.
func (g *guard) begin(ctx context.Context, method string) (context.Context, *guardedCall, budget, error) {
	p := g.policyFor(method)
	now := time.Now()
	b := budget{source: "client"}
	b.deadline, b.has = ctx.Deadline()
	switch {
	case !b.has && p.Default > 0:
		b.deadline, b.has, b.dflt, b.source = now.Add(p.Default), true, p.Default, "server default"
	case !b.has && p.Max > 0, b.has && p.Max > 0 && b.deadline.Sub(now) > p.Max:
		b.deadline, b.has, b.capped, b.source = now.Add(p.Max), true, p.Max, "server cap"
	}
	if left := b.deadline.Sub(now); b.has && p.MinBudget > 0 && left < p.MinBudget {
		g.logger.LogAttrs(ctx, slog.LevelInfo, "call refused: budget below minimum",
			slog.String("method", method), slog.Duration("left", round(left)), slog.Duration("min", p.MinBudget))
		st, _ := status.New(codes.DeadlineExceeded, fmt.Sprintf("greeter: %s needs at least %v of budget, the call has %v left", method, p.MinBudget, round(max(left, 0)))).
			WithDetails(&errdetails.ErrorInfo{Domain: errorInfoDomain, Reason: reasonMinBudget, Metadata: map[string]string{"min": p.MinBudget.String()}})
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
func (g *guard) end(c *guardedCall) {
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
func (g *guard) contextEnded(c *guardedCall) {
	c.ended.Store(g.since(time.Now()))
	g.armSweep()
}

// since is t in nanoseconds since the guard's epoch, at least 1: times
// compared on the monotonic clock, in a word a call can hold atomically.
func (g *guard) since(t time.Time) int64 {
	return max(int64(t.Sub(g.epoch)), 1)
}

// sweepPeriod is how often the sweeper looks: an overrun is caught between
// grace and grace plus a period after its context ended.
func (g *guard) sweepPeriod() time.Duration {
	return max(g.grace/2, minSweepPeriod)
}

// minSweepPeriod bounds how often the sweeper wakes for a tiny grace.
const minSweepPeriod = 5 * time.Millisecond

// armSweep makes sure a sweep is pending. A sweep disarms before it looks,
// and a call is listed before it arms: each call is seen by a sweep.
func (g *guard) armSweep() {
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
func (g *guard) sweep() {
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
		g.logger.Warn("handler still running after its context ended",
			"method", o.method, "since_end", round(o.since), "running", round(o.ranFor))
	}
	if pending {
		g.armSweep()
	}
}

// stop stops the sweeper once the server has stopped.
func (g *guard) stop() {
	if g == nil {
		return
	}
	g.sweepMu.Lock()
	defer g.sweepMu.Unlock()
	g.stopped = true
	g.sweeper.Stop()
}

func (g *guard) handlerReturned(c *guardedCall) {
	if c.unwatch != nil {
		c.unwatch()
	}
	g.unlist(c)
	// One that returns late but before a sweep saw it.
	if e := c.ended.Load(); e != 0 && !c.counted.Load() {
		if since := time.Duration(g.since(time.Now()) - e); since >= g.grace && c.counted.CompareAndSwap(false, true) {
			g.overruns.Add(1)
			g.logger.Warn("handler returned late, after its context ended", "method", c.method, "since_end", round(since))
		}
	}
}

// unlist takes c off its shard's list of running handlers.
func (g *guard) unlist(c *guardedCall) {
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
func (g *guard) stuck() []string {
	var names []string
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for c := sh.running; c != nil; c = c.next {
			names = append(names, fmt.Sprintf("%s (running %v)", c.method, round(time.Since(c.start))))
		}
		sh.mu.Unlock()
	}
	sort.Strings(names)
	return names
}

// reportStuck logs the handlers still running when Shutdown forces the
// stop; they ignored the end of their context, or their callers set no
// deadline.
func (g *guard) reportStuck() {
	if g == nil {
		return
	}
	g.stopping.Store(true)
	if names := g.stuck(); len(names) > 0 {
		g.logger.Warn("shutdown: grace period over, stopping handlers still running", "handlers", names)
	}
}

// finish turns the handler's error into the status the caller gets and
// logs the end of a call cut short by its deadline or its caller.
func (g *guard) finish(ctx context.Context, ctxErr error, method string, b budget, call *guardedCall, err error, setTrailer func(metadata.MD)) error {
	if b.capped > 0 {
		setTrailer(metadata.Pairs(TrailerDeadlineCap, b.capped.String()))
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
				slog.String("method", method), slog.Duration("after", round(time.Since(call.start))))
		}
		return st
	}
	if logOn {
		g.logger.LogAttrs(ctx, slog.LevelInfo, "deadline exceeded",
			slog.String("method", method), slog.String("budget_from", b.source),
			slog.Duration("budget", round(b.deadline.Sub(call.start))), slog.Duration("after", round(time.Since(call.start))))
	}
	if b.capped > 0 && ctx.Err() == nil {
		st, _ := status.New(codes.DeadlineExceeded, fmt.Sprintf("greeter: the server's cap of %v for %s ran out", b.capped, method)).
			WithDetails(&errdetails.ErrorInfo{Domain: errorInfoDomain, Reason: reasonServerCap, Metadata: map[string]string{"cap": b.capped.String()}})
		return st.Err()
	}
	if b.dflt > 0 {
		st, _ := status.New(codes.DeadlineExceeded, fmt.Sprintf("greeter: the call had no deadline and the server's default of %v for %s ran out", b.dflt, method)).
			WithDetails(&errdetails.ErrorInfo{Domain: errorInfoDomain, Reason: reasonServerDefault, Metadata: map[string]string{"default": b.dflt.String()}})
		return st.Err()
	}
	return errServerDeadline
}

// The guard's own statuses; immutable, so shared.
var (
	errServerDeadline = status.Error(codes.DeadlineExceeded, "greeter: deadline exceeded on the server")
	errCallerCanceled = status.Error(codes.Canceled, "greeter: call canceled by the caller")
	errShuttingDown   = status.Error(codes.Unavailable, "greeter: server shutting down")
)

// wait does d of simulated work, or less if ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	hctx, call, b, err := g.begin(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	var ctxErr error
	resp, err := func() (any, error) {
		defer g.end(call)
		defer func() { ctxErr = hctx.Err() }() // before end cancels hctx
		if g.cfg.hook != nil {
			if err := g.cfg.hook(hctx, info.FullMethod); err != nil {
				return nil, err
			}
		}
		if err := wait(hctx, g.cfg.delay); err != nil {
			return nil, err
		}
		if g.cfg.upstream != nil {
			return g.cfg.upstream.unary(hctx, info.FullMethod, req)
		}
		return handler(hctx, req)
	}()
	err = g.finish(ctx, ctxErr, info.FullMethod, b, call, err, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	hctx, call, b, err := g.begin(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	gs := &guardedStream{ServerStream: ss, ctx: hctx, delay: g.cfg.delay}
	if pdl, ok := ctx.Deadline(); b.has && info.IsClientStream && (!ok || b.deadline.Before(pdl)) {
		// grpc's RecvMsg ends with grpc's context, not ours: without
		// help a handler blocked in Recv would outlive the server's own
		// deadline.
		gs.recvGuard = true
	}
	var ctxErr error
	err = func() error {
		defer g.end(call)
		defer func() { ctxErr = hctx.Err() }() // before end cancels hctx
		switch {
		case g.cfg.upstream != nil && info.IsClientStream:
			return g.cfg.upstream.bidiStream(gs, info.FullMethod)
		case g.cfg.upstream != nil:
			return g.cfg.upstream.serverStream(gs, info.FullMethod)
		}
		return handler(srv, gs)
	}()
	return g.finish(ctx, ctxErr, info.FullMethod, b, call, err, ss.SetTrailer)
}

// guardedStream hands the handler its policed context and paces replies by
// the simulated work.
type guardedStream struct {
	grpc.ServerStream
	ctx       context.Context
	delay     time.Duration
	recvGuard bool
}

func (s *guardedStream) RecvMsg(m any) error {
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

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) SendMsg(m any) error {
	if err := wait(s.ctx, s.delay); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}
