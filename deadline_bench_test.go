package greeter_test

import (
	"context"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/trace"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Deadline precision, greeter against plain grpc-go in the same run: 100
// concurrent calls to 127.0.0.1 whose handler waits for its context to end,
// each with a 50ms deadline, b.N waves for each, alternating. Lateness is when the client
// got DeadlineExceeded minus its deadline; cancellation lag is when the
// handler saw its context end minus the same deadline. Each run also reports
// greeter's percentiles as ratios to grpc-go's in the same run, each
// implementation's share of handlers whose context said DeadlineExceeded
// rather than Canceled, and the process's CPU time per call during each
// one's waves, with its in-run ratio: the percentiles are made of that CPU
// (100 deadlines expire at once on a few cores), and it varies far less
// from run to run than they do. Last, what the lag is made of: how much
// later the server's deadline was than the client's (grpc-timeout counts
// from when the client sent the headers, the server from when it read
// them, which in a burst of 100 calls is about a millisecond later), the
// share of handlers whose grpc context the server's own timer ended
// rather than the client's RST_STREAM, and the lag p50 of each. Run with:
//
//	go test -c -o /tmp/g.test . && for i in $(seq 16); do /tmp/g.test -test.run '^$' -test.bench 'DeadlinePrecision$' -test.benchtime 60x; done > p.txt && benchstat p.txt
//
// With -test.trace, bench/expirycpu reads where the CPU went around the
// deadlines, which is what decides the percentiles (bench/README.md).
const (
	precisionConcurrency = 100
	precisionBudget      = 50 * time.Millisecond
)

// precisionRecorder matches server-side ends to client-side deadlines by the
// request's name, which carries the wave's number and the call's index in
// it (wave*precisionConcurrency + index).
type precisionRecorder struct {
	mu        sync.Mutex
	wave      int // the current wave's number
	deadlines []time.Time
	lag       []time.Duration
	// sawDeadline counts the handlers whose context said DeadlineExceeded:
	// with plain grpc-go, those its own timer ended before the client's
	// RST_STREAM came; greeter's guard says so for a cancellation near
	// the deadline too.
	sawDeadline int
	// ended gets one value per handler of the current wave that ended.
	ended chan struct{}
	// missed counts the calls whose handler never ran (see awaitEnds);
	// only the benchmark's goroutine touches it.
	missed int
	// delay is each call's server-side deadline minus its client-side
	// one: grpc-timeout counts from when the client sent the headers and
	// the server from when it read them.
	delay []time.Duration
	// The lags of the handlers whose grpc context the server's own timer
	// ended, and of those the client's RST_STREAM ended first.
	lagTimer, lagRST []time.Duration
}

func newPrecisionRecorder() *precisionRecorder {
	return &precisionRecorder{
		deadlines: make([]time.Time, precisionConcurrency),
		ended:     make(chan struct{}, precisionConcurrency),
	}
}

// begin starts a wave and returns its number. A handler of an earlier wave
// that ends from now on is ignored.
func (r *precisionRecorder) begin() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wave++
	for len(r.ended) > 0 {
		<-r.ended
	}
	return r.wave
}

// awaitEnds waits for n handlers of the current wave to end, once all its
// calls have returned, and returns how many never did. A handler can miss
// its wave for good: grpc does not start one for a call whose deadline has
// passed when the server reads its headers, which a stall of the machine
// longer than the budget brings about (runs have hung here).
func (r *precisionRecorder) awaitEnds(n int) (missed int) {
	// Handlers end within milliseconds of their callers, even in the
	// storm; a second more is for a machine that stalls.
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for got := 0; got < n; got++ {
		select {
		case <-r.ended:
		case <-timeout.C:
			return n - got
		}
	}
	return 0
}

type doneAtKey struct{}

// handlerEnd is what awaitEnd notes, in the slot the interceptor puts in ctx.
type handlerEnd struct {
	at       time.Time
	deadline bool // ctx.Err() was DeadlineExceeded
}

// awaitEnd is the handler's work: wait for the context to end, and note
// when it did in the slot the interceptor put in ctx.
func awaitEnd(ctx context.Context) error {
	<-ctx.Done()
	err := ctx.Err()
	*ctx.Value(doneAtKey{}).(*handlerEnd) = handlerEnd{at: time.Now(), deadline: err == context.DeadlineExceeded}
	return status.FromContextError(err).Err()
}

func (r *precisionRecorder) interceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	var end handlerEnd
	serverDeadline, _ := ctx.Deadline()
	resp, err := h(context.WithValue(ctx, doneAtKey{}, &end), req)
	// grpc's own context, outside greeter's guard: DeadlineExceeded when
	// the server's timer ended it, Canceled when the client's RST_STREAM
	// came first.
	byTimer := ctx.Err() == context.DeadlineExceeded
	n, _ := strconv.Atoi(req.(*greeterpb.HelloRequest).GetName())
	r.mu.Lock()
	defer r.mu.Unlock()
	if n/precisionConcurrency != r.wave {
		return resp, err // a late handler of a wave given up on
	}
	lag := end.at.Sub(r.deadlines[n%precisionConcurrency])
	r.lag = append(r.lag, lag)
	r.delay = append(r.delay, serverDeadline.Sub(r.deadlines[n%precisionConcurrency]))
	if byTimer {
		r.lagTimer = append(r.lagTimer, lag)
	} else {
		r.lagRST = append(r.lagRST, lag)
	}
	if end.deadline {
		r.sawDeadline++
	}
	r.ended <- struct{}{} // never blocks: one per call of the wave, drained by begin
	return resp, err
}

func BenchmarkDeadlinePrecision(b *testing.B) {
	runPrecision(b, []*precisionImpl{
		{name: "grpc", start: precisionPair(plainPrecisionServer, plainPrecisionClient)},
		{name: "greeter", start: precisionPair(greeterPrecisionServer(), greeterPrecisionClient)},
	})
}

// BenchmarkDeadlinePrecisionControl is BenchmarkDeadlinePrecision with
// plain grpc-go on both sides of the comparison: its ratios, which should be
// 1, show how far the benchmark itself can move them (bench/README.md):
//
//	go test -c -o /tmp/g.test . && for i in $(seq 24); do /tmp/g.test -test.run '^$' -test.bench DeadlinePrecisionControl -test.benchtime 60x; done > control.txt && benchstat control.txt
func BenchmarkDeadlinePrecisionControl(b *testing.B) {
	runPrecision(b, []*precisionImpl{
		{name: "grpc", start: precisionPair(plainPrecisionServer, plainPrecisionClient)},
		{name: "grpc-again", start: precisionPair(plainPrecisionServer, plainPrecisionClient)},
	})
}

// BenchmarkDeadlinePrecisionParts is BenchmarkDeadlinePrecision with one
// side of greeter at a time against plain grpc-go, and greeter's server
// without its stream workers, to tell where a difference comes from
// (bench/README.md):
//
//	go test -c -o /tmp/g.test . && for i in $(seq 20); do /tmp/g.test -test.run '^$' -test.bench DeadlinePrecisionParts -test.benchtime 40x; done > parts.txt && benchstat parts.txt
func BenchmarkDeadlinePrecisionParts(b *testing.B) {
	runPrecision(b, []*precisionImpl{
		{name: "grpc", start: precisionPair(plainPrecisionServer, plainPrecisionClient)},
		{name: "greeter-server", start: precisionPair(greeterPrecisionServer(), plainPrecisionClient)},
		{name: "greeter-server-no-workers", start: precisionPair(greeterPrecisionServer(greeter.WithGRPCServerOptions(grpc.NumStreamWorkers(0))), plainPrecisionClient)},
		{name: "greeter-client", start: precisionPair(plainPrecisionServer, greeterPrecisionClient)},
	})
}

// runPrecision runs b.N waves of each of impls, in turn, and reports each
// one's percentiles and, for each after the first, their ratios to the
// first's in the same run.
func runPrecision(b *testing.B, impls []*precisionImpl) {
	// Set up in a random order: whichever was set up second measured up to
	// 10% later in either role, so runs with both orders even that out.
	setup := slices.Clone(impls)
	rand.Shuffle(len(setup), func(i, j int) { setup[i], setup[j] = setup[j], setup[i] })
	for _, impl := range setup {
		impl.rec = newPrecisionRecorder()
		impl.call = impl.start(b, impl.rec)
		w := impl.rec.begin()
		if err := impl.call(context.Background(), strconv.Itoa(w*precisionConcurrency)); status.Code(err) != codes.DeadlineExceeded {
			b.Fatalf("%s warm-up: %v; want DeadlineExceeded", impl.name, err) // also connects
		}
		impl.rec.awaitEnds(1)
		impl.rec.mu.Lock()
		impl.rec.lag = impl.rec.lag[:0]
		impl.rec.delay, impl.rec.lagTimer, impl.rec.lagRST = impl.rec.delay[:0], impl.rec.lagTimer[:0], impl.rec.lagRST[:0]
		impl.rec.sawDeadline = 0
		impl.rec.mu.Unlock()
	}
	b.ResetTimer()
	for n := range b.N {
		// Waves rotate, each in turn first, so that a change of load on
		// the machine weighs on all alike.
		for k := range impls {
			impls[(n+k)%len(impls)].wave(b)
		}
	}
	b.StopTimer()
	for _, impl := range impls {
		impl.p50Late, impl.p99Late = report(b, impl.name+"-late", impl.late)
		impl.p50Lag, impl.p99Lag = report(b, impl.name+"-lag", impl.rec.lag)
		b.ReportMetric(100*float64(impl.rec.sawDeadline)/float64(len(impl.rec.lag)), impl.name+"-handler-saw-deadline-%")
		b.ReportMetric(float64(impl.rec.missed), impl.name+"-handlers-missed")
		// How the handlers' contexts ended, and how late the server's
		// deadline was: what the lag is made of (bench/README.md).
		b.ReportMetric(percentile(impl.rec.delay, 0.5), impl.name+"-server-deadline-delay-p50-µs")
		b.ReportMetric(100*float64(len(impl.rec.lagTimer))/float64(len(impl.rec.lag)), impl.name+"-ended-by-server-timer-%")
		b.ReportMetric(percentile(impl.rec.lagTimer, 0.5), impl.name+"-lag-by-server-timer-p50-µs")
		b.ReportMetric(percentile(impl.rec.lagRST, 0.5), impl.name+"-lag-by-client-rst-p50-µs")
		if impl.cpu > 0 {
			b.ReportMetric(float64(impl.cpu.Microseconds())/float64(b.N*precisionConcurrency), impl.name+"-cpu-µs/call")
		}
	}
	// The ratios within this run, where the machine's state weighed on all
	// alike: benchstat over several runs gives their median and spread.
	base := impls[0]
	for _, impl := range impls[1:] {
		vs := impl.name + "/" + base.name
		b.ReportMetric(impl.p50Late/base.p50Late, "late-p50-"+vs)
		b.ReportMetric(impl.p99Late/base.p99Late, "late-p99-"+vs)
		b.ReportMetric(impl.p50Lag/base.p50Lag, "lag-p50-"+vs)
		b.ReportMetric(impl.p99Lag/base.p99Lag, "lag-p99-"+vs)
		if base.cpu > 0 {
			b.ReportMetric(float64(impl.cpu)/float64(base.cpu), "cpu-"+vs)
		}
	}
}

type precisionImpl struct {
	name  string
	start func(b *testing.B, rec *precisionRecorder) func(ctx context.Context, name string) error
	call  func(ctx context.Context, name string) error
	rec   *precisionRecorder
	mu    sync.Mutex
	late  []time.Duration
	// The run's percentiles, in µs.
	p50Late, p99Late, p50Lag, p99Lag float64
	// cpu is the process's CPU time during the waves, both sides and
	// the runtime: 0 where processCPU cannot tell.
	cpu time.Duration
}

// wave makes precisionConcurrency calls at once and waits for their ends on
// both sides.
func (p *precisionImpl) wave(b *testing.B) {
	// A collection now, between waves, so that one does not start in the
	// middle of a wave: the two implementations share this process, and a
	// GC falling into one's wave would decide its p99.
	runtime.GC()
	cpu0 := processCPU()
	w := p.rec.begin()
	var wg sync.WaitGroup
	for i := range precisionConcurrency {
		ctx, cancel := context.WithTimeout(context.Background(), precisionBudget)
		dl, _ := ctx.Deadline()
		if i == 0 && trace.IsEnabled() {
			// Under -test.trace, mark where the wave's first deadline
			// falls, for bench/expirycpu.
			trace.Log(ctx, "precision-wave", p.name+" "+strconv.FormatInt(int64(time.Until(dl)), 10))
		}
		p.rec.mu.Lock()
		p.rec.deadlines[i] = dl
		p.rec.mu.Unlock()
		wg.Go(func() {
			defer cancel()
			err := p.call(ctx, strconv.Itoa(w*precisionConcurrency+i))
			now := time.Now()
			if status.Code(err) != codes.DeadlineExceeded {
				b.Errorf("%s: call: %v; want DeadlineExceeded", p.name, err)
			}
			p.mu.Lock()
			p.late = append(p.late, now.Sub(dl))
			p.mu.Unlock()
		})
	}
	wg.Wait()
	p.rec.missed += p.rec.awaitEnds(precisionConcurrency)
	p.cpu += processCPU() - cpu0
	if trace.IsEnabled() {
		trace.Log(context.Background(), "precision-wave", "end")
	}
}

// report reports the p50 and p99 of d, in µs, and returns them.
func report(b *testing.B, what string, d []time.Duration) (p50, p99 float64) {
	p50, p99 = percentile(d, 0.50), percentile(d, 0.99)
	b.ReportMetric(p50, what+"-p50-µs")
	b.ReportMetric(p99, what+"-p99-µs")
	return p50, p99
}

// percentile returns the p-th percentile of d in µs, sorting d; 0 for none.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return float64(d[int(p*float64(len(d)-1))].Microseconds())
}

func listenLocal(b *testing.B) net.Listener {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return lis
}

// ctxWaitingGreeter is the plain grpc-go handler a careful grpc-go user writes: wait for the
// work or the end of the context.
type ctxWaitingGreeter struct {
	greeterpb.UnimplementedGreeterServer
}

func (ctxWaitingGreeter) SayHello(ctx context.Context, _ *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return nil, awaitEnd(ctx)
}

// precisionPair starts a server and a client of it for an implementation
// of BenchmarkDeadlinePrecision.
func precisionPair(
	server func(b *testing.B, rec *precisionRecorder) string,
	client func(b *testing.B, addr string) func(context.Context, string) error,
) func(*testing.B, *precisionRecorder) func(context.Context, string) error {
	return func(b *testing.B, rec *precisionRecorder) func(context.Context, string) error {
		call := client(b, server(b, rec))
		return func(ctx context.Context, name string) error {
			if ctx.Done() == nil { // the warm-up
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, precisionBudget)
				defer cancel()
				rec.mu.Lock()
				rec.deadlines[0], _ = ctx.Deadline()
				rec.mu.Unlock()
			}
			return call(ctx, name)
		}
	}
}

func plainPrecisionServer(b *testing.B, rec *precisionRecorder) string {
	srv := grpc.NewServer(grpc.UnaryInterceptor(rec.interceptor))
	greeterpb.RegisterGreeterServer(srv, ctxWaitingGreeter{})
	lis := listenLocal(b)
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func greeterPrecisionServer(opts ...greeter.ServerOption) func(*testing.B, *precisionRecorder) string {
	return func(b *testing.B, rec *precisionRecorder) string {
		srv, err := greeter.NewServer(append([]greeter.ServerOption{
			greeter.WithUnaryServerInterceptor(rec.interceptor),
			// The handler's work, as in the plain server, inside
			// greeter's deadline guard.
			greeter.WithHandler(ctxWaitingGreeter{}),
			greeter.WithServerDeadlines(greeter.DeadlinePolicy{}),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		lis := listenLocal(b)
		go srv.Serve(lis)
		b.Cleanup(func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			srv.Shutdown(ctx)
		})
		return lis.Addr().String()
	}
}

func plainPrecisionClient(b *testing.B, addr string) func(context.Context, string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := greeterpb.NewGreeterClient(conn)
	return func(ctx context.Context, name string) error {
		_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: name})
		return err
	}
}

func greeterPrecisionClient(b *testing.B, addr string) func(context.Context, string) error {
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return func(ctx context.Context, name string) error {
		_, err := c.SayHello(ctx, name)
		return err
	}
}

// BenchmarkDeadlineGuard measures what the server's deadline guard
// (WithServerDeadlines; `greeter serve` always has it) costs per unary call,
// with GOMAXPROCS callers over TCP, against plain grpc-go and greeter
// without it, in the same run:
//
//	go test -c -o /tmp/g.test . && for i in 1 2 3 4 5 6; do /tmp/g.test -test.run '^$' -test.bench DeadlineGuard -test.benchmem; done > g.txt && benchstat -col /impl g.txt
func BenchmarkDeadlineGuard(b *testing.B) {
	guard := greeter.WithServerDeadlines(greeter.DeadlinePolicy{})
	for _, impl := range []struct {
		name  string
		start func(b *testing.B, lis net.Listener, target string) benchClient
	}{
		{"grpc-go", func(b *testing.B, lis net.Listener, target string) benchClient {
			return startPlain(b, lis, target, nil)
		}},
		{"greeter", func(b *testing.B, lis net.Listener, target string) benchClient {
			return startGreeter(b, lis, target, nil)
		}},
		{"greeter-guard", func(b *testing.B, lis net.Listener, target string) benchClient {
			return startGreeter(b, lis, target, nil, guard)
		}},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			c := impl.start(b, lis, lis.Addr().String())
			ctx := benchContext(b)
			warm(b, ctx, c)
			parallelCalls(b, ctx, c)
		})
	}
}
