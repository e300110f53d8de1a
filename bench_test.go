package greeter_test

// Benchmarks of greeter against plain grpc-go, in the same run and with the
// same settings: same transport, same listener, same message, same caller
// context (one with a deadline, as every well-behaved caller has, so
// greeter's default timeout adds nothing and both send grpc-timeout).
//
// bench/README.md has the commands, with benchstat to compare the
// implementations as ratios, and docs/performance.md the results.
//
// impl=grpc-go is grpc.NewServer + greeterpb.RegisterGreeterServer and
// greeterpb.NewGreeterClient on grpc.NewClient, with a handler equivalent to
// greeter's. impl=greeter is greeter.NewServer and greeter.NewClient with
// their defaults. impl=greeter-full adds a production chain on the server:
// go-grpc-middleware logging through slog at a level that drops the line,
// grpc-go's OpenTelemetry metrics into an SDK MeterProvider, and panic
// recovery (greeter's default, from go-grpc-middleware). impl=greeter-observed
// is greeter with the signals greeter serve --metrics-addr and
// --otlp-endpoint turn on: metrics for Prometheus and traces, with their
// exporters in process; impl=greeter-metrics the metrics alone (--metrics-addr
// without an OTLP endpoint). impl=grpc-go-observed and impl=grpc-go-metrics
// are plain grpc-go with the same signals through the same grpc-go
// stats/opentelemetry option: what grpc-go's own machinery costs.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/experimental"
	otelexp "google.golang.org/grpc/experimental/opentelemetry"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats/opentelemetry"
	"google.golang.org/grpc/test/bufconn"
)

// benchName is the name every benchmark call greets.
const benchName = "world"

// benchTransport makes a listener and the target and dial options that
// reach it.
type benchTransport struct {
	name   string
	listen func(b *testing.B) (lis net.Listener, target string, dopts []grpc.DialOption)
}

var benchTransports = []benchTransport{
	{"bufconn", func(b *testing.B) (net.Listener, string, []grpc.DialOption) {
		lis := bufconn.Listen(1 << 20) // greetertest's size
		dial := func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }
		return lis, "passthrough:///bufnet", []grpc.DialOption{grpc.WithContextDialer(dial)}
	}},
	{"tcp", func(b *testing.B) (net.Listener, string, []grpc.DialOption) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		return lis, lis.Addr().String(), nil
	}},
}

// benchClient is what a benchmark drives, whatever the implementation.
type benchClient struct {
	sayHello func(ctx context.Context) error
	bidi     func(ctx context.Context) (grpc.BidiStreamingClient[greeterpb.HelloRequest, greeterpb.HelloReply], error)
}

// benchImpl serves on lis and returns a client for target; it registers
// the teardown with b.Cleanup.
type benchImpl struct {
	name  string
	start func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient
}

var benchImpls = []benchImpl{
	{"grpc-go", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		return startPlain(b, lis, target, dopts)
	}},
	// grpc-go given the tuned server options greeter starts with: the
	// difference between it and greeter is the wrapper's own cost.
	{"grpc-go-tuned", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		return startPlain(b, lis, target, dopts, grpc.NumStreamWorkers(uint32(greeter.StreamWorkersPerCPU*runtime.GOMAXPROCS(0))))
	}},
	{"greeter", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		return startGreeter(b, lis, target, dopts)
	}},
	{"greeter-full", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		return startGreeter(b, lis, target, dopts, fullChain(b)...)
	}},
	{"greeter-observed", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		mp, tp := observedProviders(b)
		return startGreeter(b, lis, target, dopts, greeter.WithMeterProvider(mp), greeter.WithTracerProvider(tp))
	}},
	// Metrics alone, as greeter serve --metrics-addr turns them on without
	// an OTLP endpoint; and plain grpc-go with the same stats option.
	{"greeter-metrics", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		mp, _ := observedProviders(b)
		return startGreeter(b, lis, target, dopts, greeter.WithMeterProvider(mp))
	}},
	{"grpc-go-metrics", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		mp, _ := observedProviders(b)
		return startPlain(b, lis, target, dopts, opentelemetry.ServerOption(opentelemetry.Options{
			MetricsOptions: opentelemetry.MetricsOptions{MeterProvider: mp},
		}))
	}},
	// grpc-go with the same signals, through the same grpc-go
	// stats/opentelemetry option and providers: what they cost a plain
	// grpc-go server.
	{"grpc-go-observed", func(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption) benchClient {
		mp, tp := observedProviders(b)
		return startPlain(b, lis, target, dopts, opentelemetry.ServerOption(opentelemetry.Options{
			MetricsOptions: opentelemetry.MetricsOptions{MeterProvider: mp},
			TraceOptions: otelexp.TraceOptions{
				TracerProvider:    tp,
				TextMapPropagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
			},
		}))
	}},
}

// plainGreeter is the Greeter a plain grpc-go program writes, doing what
// greeter's handlers do.
type plainGreeter struct {
	greeterpb.UnimplementedGreeterServer
}

func (plainGreeter) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}, nil
}

func (plainGreeter) SayHelloBidiStream(stream grpc.BidiStreamingServer[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!"}); err != nil {
			return err
		}
	}
}

func startPlain(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption, sopts ...grpc.ServerOption) benchClient {
	s := grpc.NewServer(sopts...)
	greeterpb.RegisterGreeterServer(s, plainGreeter{})
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dopts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		s.Stop()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	c := greeterpb.NewGreeterClient(conn)
	return benchClient{
		sayHello: func(ctx context.Context) error {
			_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: benchName})
			return err
		},
		bidi: func(ctx context.Context) (grpc.BidiStreamingClient[greeterpb.HelloRequest, greeterpb.HelloReply], error) {
			return c.SayHelloBidiStream(ctx)
		},
	}
}

func startGreeter(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption, sopts ...greeter.ServerOption) benchClient {
	return startGreeterOpts(b, lis, target, dopts, sopts...)
}

// startGreeterOpts is startGreeter with extra client dial options.
func startGreeterOpts(b *testing.B, lis net.Listener, target string, dopts []grpc.DialOption, sopts ...greeter.ServerOption) benchClient {
	s, err := greeter.NewServer(sopts...)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	c, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithDialOptions(dopts...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stop at once: benchmarks leave nothing in flight
		s.Shutdown(ctx)
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	return benchClient{
		sayHello: func(ctx context.Context) error {
			_, err := c.SayHello(ctx, benchName)
			return err
		},
		bidi: func(ctx context.Context) (grpc.BidiStreamingClient[greeterpb.HelloRequest, greeterpb.HelloReply], error) {
			return c.SayHelloBidiStream(ctx)
		},
	}
}

// fullChain is the production chain of greeter-full: access logging at a
// level the logger drops (the cost of having it configured), metrics on,
// panic recovery on (greeter's own default, outermost).
func fullChain(b *testing.B) []greeter.ServerOption {
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	logf := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	return []greeter.ServerOption{
		greeter.WithLogger(logger),
		// Recovery is on by default in greeter (outermost), so it is not
		// added again here.
		greeter.WithUnaryServerInterceptor(logging.UnaryServerInterceptor(logf)),
		greeter.WithStreamServerInterceptor(logging.StreamServerInterceptor(logf)),
		greeter.WithGRPCServerOptions(opentelemetry.ServerOption(opentelemetry.Options{
			MetricsOptions: opentelemetry.MetricsOptions{MeterProvider: mp},
		})),
	}
}

// observedProviders are what greeter serve --metrics-addr and
// --otlp-endpoint do: grpc-go's and greeter's metrics into a MeterProvider
// read by the Prometheus exporter on a registry of its own, and every call
// traced (the SDK's default sampler: a call without a trace is sampled)
// through a batching span processor, whose exporter here drops the spans
// instead of sending them.
func observedProviders(b *testing.B) (*sdkmetric.MeterProvider, *sdktrace.TracerProvider) {
	exp, err := otelprom.New(otelprom.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() {
		mp.Shutdown(context.Background())
		tp.Shutdown(context.Background())
	})
	return mp, tp
}

// benchContext is the callers' context: it has a deadline, far away.
func benchContext(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	b.Cleanup(cancel)
	return ctx
}

// forEachImpl runs f as BenchmarkX/transport=T/impl=I for every pair.
func forEachImpl(b *testing.B, f func(b *testing.B, c benchClient)) {
	for _, tr := range benchTransports {
		for _, impl := range benchImpls {
			b.Run("transport="+tr.name+"/impl="+impl.name, func(b *testing.B) {
				lis, target, dopts := tr.listen(b)
				f(b, impl.start(b, lis, target, dopts))
			})
		}
	}
}

// warm makes one call so that connection setup is not timed.
func warm(b *testing.B, ctx context.Context, c benchClient) {
	if err := c.sayHello(ctx); err != nil {
		b.Fatalf("SayHello: %v", err)
	}
}

// BenchmarkUnary measures one caller making SayHello calls back to back:
// latency per call.
func BenchmarkUnary(b *testing.B) {
	forEachImpl(b, func(b *testing.B, c benchClient) {
		ctx := benchContext(b)
		warm(b, ctx, c)
		b.ReportAllocs()
		for b.Loop() {
			if err := c.sayHello(ctx); err != nil {
				b.Fatalf("SayHello: %v", err)
			}
		}
	})
}

// BenchmarkUnaryParallel measures GOMAXPROCS callers sharing one client:
// throughput per call.
func BenchmarkUnaryParallel(b *testing.B) {
	forEachImpl(b, func(b *testing.B, c benchClient) {
		ctx := benchContext(b)
		warm(b, ctx, c)
		parallelCalls(b, ctx, c)
	})
}

// BenchmarkUnaryFanOut measures calls made each on a goroutine of its own,
// 16 at a time, as a server fanning a request out to its backends makes
// them: a new goroutine starts with a small stack, which grows during the
// call. ns/call is the time per call.
func BenchmarkUnaryFanOut(b *testing.B) {
	const fanOut = 16
	forEachImpl(b, func(b *testing.B, c benchClient) {
		ctx := benchContext(b)
		warm(b, ctx, c)
		b.ReportAllocs()
		for b.Loop() {
			var wg sync.WaitGroup
			for range fanOut {
				wg.Go(func() {
					if err := c.sayHello(ctx); err != nil {
						b.Errorf("SayHello: %v", err)
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fanOut), "ns/call")
	})
}

// parallelCalls times GOMAXPROCS callers (times b's parallelism) making
// SayHello calls on c.
func parallelCalls(b *testing.B, ctx context.Context, c benchClient) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.sayHello(ctx); err != nil {
				b.Errorf("SayHello: %v", err)
				return
			}
		}
	})
}

// BenchmarkBidiStream measures SayHelloBidiStream throughput: one stream,
// a sender pipelining b.N requests while the caller reads b.N replies.
// ns/op is per message; msgs/s is reported.
func BenchmarkBidiStream(b *testing.B) {
	forEachImpl(b, benchBidi)
}

// benchBidi is BenchmarkBidiStream's body for one client.
func benchBidi(b *testing.B, c benchClient) {
	ctx, cancel := context.WithCancel(benchContext(b))
	defer cancel()
	stream, err := c.bidi(ctx)
	if err != nil {
		b.Fatalf("SayHelloBidiStream: %v", err)
	}
	// One round trip first, so that stream setup is not timed.
	if err := stream.Send(&greeterpb.HelloRequest{Name: benchName}); err != nil {
		b.Fatalf("Send: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		b.Fatalf("Recv: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := make(chan error, 1)
	go func() {
		req := &greeterpb.HelloRequest{Name: benchName}
		for i := 0; i < b.N; i++ {
			if err := stream.Send(req); err != nil {
				sent <- err
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	for i := 0; i < b.N; i++ {
		if _, err := stream.Recv(); err != nil {
			cancel() // unblocks the sender
			b.Fatalf("Recv: %v (send: %v)", err, <-sent)
		}
	}
	if err := <-sent; err != nil {
		b.Fatalf("Send: %v", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		b.Fatalf("Recv after the last reply: %v, want io.EOF", err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMemory reports memory, client and server together in one
// process, since both run here:
//
//   - idle-conn-B: heap and goroutine stack bytes per idle connection, client
//     and server side together (see idleConnBytes);
//   - load-heap-B: how much the live heap grows, at its largest, while
//     GOMAXPROCS*8 callers keep calling over one connection (sampled every
//     10ms after a GC);
//   - load-sys-B: memory obtained from the OS by the end of that load.
//
// ns/op is per call of the load phase. Garbage left by earlier benchmarks in
// the process skews load-heap-B: compare implementations each in its own
// process, e.g. -bench 'Memory/transport=tcp/impl=greeter$'.
func BenchmarkMemory(b *testing.B) {
	for _, impl := range []string{"grpc-go", "greeter"} {
		b.Run("transport=tcp/impl="+impl, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			target := lis.Addr().String()
			ctx := benchContext(b)
			// The server, and a first client that carries the load.
			var c benchClient
			var dial func() benchClient
			if impl == "grpc-go" {
				c = startPlain(b, lis, target, nil)
				dial = func() benchClient { return plainClient(b, target) }
			} else {
				c = startGreeter(b, lis, target, nil)
				dial = func() benchClient { return greeterClient(b, target) }
			}
			warm(b, ctx, c)

			idle := idleConnBytes(b, func() { warm(b, ctx, dial()) })
			before := liveHeap()

			var peak int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						peak = max(peak, liveHeap())
					}
				}
			}()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/(runtime.GOMAXPROCS(0)*8) + 1
			for range runtime.GOMAXPROCS(0) * 8 {
				wg.Go(func() {
					for range per {
						if err := c.sayHello(ctx); err != nil {
							b.Errorf("SayHello: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(stop)
			<-sampled
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(idle, "idle-conn-B")
			b.ReportMetric(float64(max(peak, liveHeap())-before), "load-heap-B")
			b.ReportMetric(float64(ms.Sys), "load-sys-B")
		})
	}
}

// idleConns is how many idle connections idleConnBytes measures.
const idleConns = 50

// idleConnBytes returns the heap and stack bytes that one more connection
// holds once idle: dial makes a connection, on which it makes one call, and
// leaves it open until the benchmark ends. A few connections are made first,
// so that one-time costs (pools, caches) are not counted, and the
// measurement waits for the previous benchmarks' connections to finish
// closing, whose memory would otherwise be freed during it.
func idleConnBytes(b *testing.B, dial func()) float64 {
	for range 5 {
		dial()
	}
	settle()
	before := memInUse()
	for range idleConns {
		dial()
	}
	return float64(memInUse()-before) / idleConns
}

// settle waits, at most a second, for the number of goroutines to stop
// falling: connections closed earlier end their goroutines asynchronously.
func settle() {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return
		}
		n = m
	}
}

// memInUse returns the bytes of live heap objects and goroutine stacks after
// full GCs.
func memInUse() int64 {
	liveHeap()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse)
}

// liveHeap returns the bytes of live heap objects after full GCs.
func liveHeap() int64 {
	// Two cycles: the first moves sync.Pool contents to the victim cache,
	// the second frees them, so pooled buffers do not count as live.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func plainClient(b *testing.B, target string) benchClient {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := greeterpb.NewGreeterClient(conn)
	return benchClient{sayHello: func(ctx context.Context) error {
		_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: benchName})
		return err
	}}
}

func greeterClient(b *testing.B, target string) benchClient {
	c, err := greeter.NewClient(target, greeter.WithInsecure())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return benchClient{sayHello: func(ctx context.Context) error {
		_, err := c.SayHello(ctx, benchName)
		return err
	}}
}

// tuningKnob is a grpc-go setting tried on greeter, server and client side.
type tuningKnob struct {
	name   string
	server []grpc.ServerOption
	client []grpc.DialOption
}

// tuningKnobs are the grpc-go settings BenchmarkTuning tries, each against
// greeter's defaults (knob=none).
func tuningKnobs() []tuningKnob {
	const window = 1 << 20
	return []tuningKnob{
		{name: "none"},
		{"shared-write-buffer", []grpc.ServerOption{grpc.SharedWriteBuffer(true)}, []grpc.DialOption{grpc.WithSharedWriteBuffer(true)}},
		// Stream workers are a default (options.go), 16 per CPU: tried
		// here as off and as the first default, one per CPU.
		{"no-stream-workers", []grpc.ServerOption{grpc.NumStreamWorkers(0)}, nil},
		{"stream-workers-1-per-cpu", []grpc.ServerOption{grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))}, nil},
		{"static-window-1MiB",
			[]grpc.ServerOption{grpc.StaticStreamWindowSize(window), grpc.StaticConnWindowSize(window)},
			[]grpc.DialOption{grpc.WithStaticStreamWindowSize(window), grpc.WithStaticConnWindowSize(window)}},
		{"buffers-64KiB",
			[]grpc.ServerOption{grpc.WriteBufferSize(64 << 10), grpc.ReadBufferSize(64 << 10)},
			[]grpc.DialOption{grpc.WithWriteBufferSize(64 << 10), grpc.WithReadBufferSize(64 << 10)}},
		{"no-buffer-pool", []grpc.ServerOption{experimental.BufferPool(mem.NopBufferPool{})},
			[]grpc.DialOption{experimental.WithBufferPool(mem.NopBufferPool{})}},
		{"forced-codec", []grpc.ServerOption{grpc.ForceServerCodecV2(encoding.GetCodecV2(proto.Name))}, nil},
		// The defaults again, last: a difference between none and control
		// is the run's drift, the noise floor of the comparison.
		{name: "control"},
	}
}

// BenchmarkTuning tries grpc-go's knobs on greeter over TCP, to adopt as
// greeter defaults only those that help. Compare with
//
//	benchstat -col /knob tuning.txt
//
// mode=unary is one caller, mode=parallel GOMAXPROCS callers,
// mode=callers50 about 50 callers (as bench/compare.sh loads), mode=bidi
// one pipelined stream (ns per message), mode=idle reports idle-conn-B as
// BenchmarkMemory does.
func BenchmarkTuning(b *testing.B) {
	for _, k := range tuningKnobs() {
		start := func(b *testing.B) (benchClient, string) {
			lis, target, _ := benchTransports[1].listen(b)
			return startGreeterOpts(b, lis, target, k.client, greeter.WithGRPCServerOptions(k.server...)), target
		}
		b.Run("knob="+k.name+"/mode=unary", func(b *testing.B) {
			c, _ := start(b)
			ctx := benchContext(b)
			warm(b, ctx, c)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.sayHello(ctx); err != nil {
					b.Fatalf("SayHello: %v", err)
				}
			}
		})
		b.Run("knob="+k.name+"/mode=parallel", func(b *testing.B) {
			c, _ := start(b)
			ctx := benchContext(b)
			warm(b, ctx, c)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.sayHello(ctx); err != nil {
						b.Errorf("SayHello: %v", err)
						return
					}
				}
			})
		})
		b.Run("knob="+k.name+"/mode=callers50", func(b *testing.B) {
			c, _ := start(b)
			ctx := benchContext(b)
			warm(b, ctx, c)
			b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
			parallelCalls(b, ctx, c)
		})
		b.Run("knob="+k.name+"/mode=bidi", func(b *testing.B) {
			c, _ := start(b)
			benchBidi(b, c)
		})
		b.Run("knob="+k.name+"/mode=idle", func(b *testing.B) {
			c, target := start(b)
			ctx := benchContext(b)
			warm(b, ctx, c)
			idle := idleConnBytes(b, func() {
				cc, err := greeter.NewClient(target, greeter.WithInsecure(), greeter.WithDialOptions(k.client...))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cc.Close() })
				if _, err := cc.SayHello(ctx, benchName); err != nil {
					b.Fatal(err)
				}
			})
			for b.Loop() {
			}
			b.ReportMetric(idle, "idle-conn-B")
		})
	}
}
