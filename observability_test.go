package greeter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/grpc-greeter/greeter/greeterpb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// meter is an SDK MeterProvider read on demand.
type meter struct {
	*sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
}

func newMeter(t *testing.T) meter {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return meter{mp, r}
}

// counts returns, for the instrument named name, the count of each data
// point (a histogram's count, a counter's value) by the values of keys,
// joined with " ".
func (m meter) counts(t *testing.T, name string, keys ...string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	label := func(set attribute.Set) string {
		var vs []string
		for _, k := range keys {
			v, _ := set.Value(attribute.Key(k))
			vs = append(vs, v.Emit())
		}
		return strings.Join(vs, " ")
	}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			if md.Name != name {
				continue
			}
			switch d := md.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got[label(p.Attributes)] += int64(p.Count)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[label(p.Attributes)] += p.Value
				}
			default:
				t.Fatalf("%s: unexpected data %T", name, md.Data)
			}
		}
	}
	return got
}

func assertCounts(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s[%s] = %d; want %d (all: %v)", what, k, got[k], v, got)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s[%s] = %d; want none (all: %v)", what, k, v, got)
		}
	}
}

// TestMetricsByMethodAndCode checks that grpc-go's standard instruments,
// on both sides, count the calls made by method and status.
func TestMetricsByMethodAndCode(t *testing.T) {
	ctx := testContext(t)
	sm, cm := newMeter(t), newMeter(t)
	srv := newServer(t, greeter.WithMeterProvider(sm))
	c := newClient(t, srv, greeter.WithMeterProvider(cm))
	for range 3 {
		if _, err := c.SayHello(ctx, "you"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SayHelloAgain(ctx, "you"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SayHello(ctx, ""); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SayHello(\"\") = %v; want InvalidArgument", err)
	}
	srv.Close() // a server records a call once its status is sent
	want := map[string]int64{
		"Greeter/SayHello OK":               3,
		"Greeter/SayHelloAgain OK":          1,
		"Greeter/SayHello INVALID_ARGUMENT": 1,
	}
	assertCounts(t, "grpc.server.call.duration", sm.counts(t, "grpc.server.call.duration", "grpc.method", "grpc.status"), want)
	assertCounts(t, "grpc.client.call.duration", cm.counts(t, "grpc.client.call.duration", "grpc.method", "grpc.status"), want)
	assertCounts(t, "grpc.client.attempt.duration", cm.counts(t, "grpc.client.attempt.duration", "grpc.method", "grpc.status"), want)
}

// TestDeadlineMetricsBySource checks greeter's own deadline instruments:
// the server counts each expiry by where the budget came from, the client
// each DeadlineError by source and phase.
func TestDeadlineMetricsBySource(t *testing.T) {
	ctx := testContext(t)
	sm, cm := newMeter(t), newMeter(t)
	srv := newServer(t, greeter.WithMeterProvider(sm), greeter.WithDelay(workForever),
		greeter.WithServerDeadlines(greeter.DeadlinePolicy{Max: time.Second, MinBudget: 200 * time.Millisecond}),
		greeter.WithMethodDeadlines("SayHelloAgain", greeter.DeadlinePolicy{Default: 100 * time.Millisecond}))
	c := newClient(t, srv, greeter.WithMeterProvider(cm))
	noDefault := newClient(t, srv, greeter.WithMeterProvider(cm), greeter.WithDefaultTimeout(0))
	for _, tt := range []struct {
		name   string
		budget time.Duration
		call   func(context.Context, string, ...grpc.CallOption) (string, error)
	}{
		{"the server's cap", 5 * time.Second, c.SayHello},
		{"the caller's deadline", 500 * time.Millisecond, c.SayHello},
		{"below the minimum budget", 50 * time.Millisecond, c.SayHello},
		{"the server's default", 0, noDefault.SayHelloAgain},
	} {
		cctx, cancel := bareContext(t), context.CancelFunc(func() {})
		if tt.budget > 0 {
			cctx, cancel = context.WithTimeout(ctx, tt.budget)
		}
		_, err := tt.call(cctx, "you")
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("%s: %v; want DeadlineExceeded", tt.name, err)
		}
	}
	assertCounts(t, "greeter.client.deadline.errors", cm.counts(t, "greeter.client.deadline.errors", "grpc.method", "grpc.status", "greeter.budget.source", "greeter.phase"), map[string]int64{
		"Greeter/SayHello DEADLINE_EXCEEDED server_cap server":          1,
		"Greeter/SayHello DEADLINE_EXCEEDED caller server":              2,
		"Greeter/SayHelloAgain DEADLINE_EXCEEDED server_default server": 1,
	})
	srv.Close() // every handler has returned, and been counted
	assertCounts(t, "greeter.server.deadline.exceeded", sm.counts(t, "greeter.server.deadline.exceeded", "grpc.method", "greeter.budget.source"), map[string]int64{
		"Greeter/SayHello server_cap":          1,
		"Greeter/SayHello client":              1,
		"Greeter/SayHello min_budget":          1,
		"Greeter/SayHelloAgain server_default": 1,
	})
}

// TestOverrunsByMethod checks that a handler outliving its call is
// counted under its method.
func TestOverrunsByMethod(t *testing.T) {
	ctx := testContext(t)
	sm := newMeter(t)
	logs := newLogRecorder()
	release := make(chan struct{})
	defer close(release)
	hook := handlerFunc(func(context.Context, string) error { <-release; return nil }) // ignores its context
	c := newClient(t, newServer(t, hook, greeter.WithMeterProvider(sm), greeter.WithLogger(logs.logger()), greeter.WithOverrunGrace(20*time.Millisecond)))
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.SayHelloAgain(cctx, "you"); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SayHelloAgain = %v; want DeadlineExceeded", err)
	}
	logs.await(ctx, t, "handler still running after its context ended") // logged once counted
	assertCounts(t, "greeter.server.handler.overruns", sm.counts(t, "greeter.server.handler.overruns", "grpc.method"), map[string]int64{
		"Greeter/SayHelloAgain": 1,
	})
}

// newTracer is a TracerProvider that exports each span as it ends into
// exp.
func newTracer(t *testing.T, exp *tracetest.InMemoryExporter) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// TestTraceAcrossRelay checks that a call through a relay (WithUpstream)
// is one trace: the client's call and attempt spans, the relay's server
// span, its own call to the backend and the backend's server span, each
// the child of the one before, each carrying the budget and its source.
func TestTraceAcrossRelay(t *testing.T) {
	ctx := testContext(t)
	exp := tracetest.NewInMemoryExporter()
	backend := newServer(t, greeter.WithTracerProvider(newTracer(t, exp)))
	up := newClient(t, backend, greeter.WithTracerProvider(newTracer(t, exp)))
	relay := newServer(t, greeter.WithTracerProvider(newTracer(t, exp)), greeter.WithUpstream(up))
	c := newClient(t, relay, greeter.WithTracerProvider(newTracer(t, exp)))
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if msg, err := c.SayHello(cctx, "trace"); err != nil || msg != "Hello, trace!" {
		t.Fatalf("SayHello = %q, %v", msg, err)
	}
	// A server's span ends after its reply is sent: once the servers have
	// stopped, every span has ended.
	relay.Close()
	backend.Close()

	spans := exp.GetSpans()
	// Outermost first: the client's call, its attempt, the relay's
	// server span, the relay's call and attempt, the backend's span.
	want := []string{"Sent.Greeter.SayHello", "Attempt.Greeter.SayHello", "Recv.Greeter.SayHello",
		"Sent.Greeter.SayHello", "Attempt.Greeter.SayHello", "Recv.Greeter.SayHello"}
	if len(spans) != len(want) {
		t.Fatalf("%d spans: %v; want %d", len(spans), spanNames(spans), len(want))
	}
	var chain []tracetest.SpanStub
	parent := ""
	for range want {
		found := false
		for _, s := range spans {
			p := ""
			if s.Parent.IsValid() {
				p = s.Parent.SpanID().String()
			}
			if p == parent {
				chain, parent, found = append(chain, s), s.SpanContext.SpanID().String(), true
				break
			}
		}
		if !found {
			t.Fatalf("no child of span %s among %v", parent, spanNames(spans))
		}
	}
	trace := chain[0].SpanContext.TraceID()
	for i, s := range chain {
		if s.Name != want[i] {
			t.Errorf("span %d = %s; want %s (chain %v)", i, s.Name, want[i], spanNames(chain))
		}
		if s.SpanContext.TraceID() != trace {
			t.Errorf("span %s in trace %s; want one trace, %s", s.Name, s.SpanContext.TraceID(), trace)
		}
	}
	// The budget and its source: the caller's context on the clients,
	// the client's deadline on the servers; the relay passes on less than
	// it got.
	budgets := map[int]string{0: "caller", 2: "client", 3: "caller", 5: "client"}
	for i, source := range budgets {
		if got := spanAttr(chain[i], "greeter.budget.source"); got != source {
			t.Errorf("%s (span %d) greeter.budget.source = %q; want %q", chain[i].Name, i, got, source)
		}
	}
	got, _ := strconv.Atoi(spanAttr(chain[2], "greeter.budget_ms"))
	relayed, _ := strconv.Atoi(spanAttr(chain[5], "greeter.budget_ms"))
	if got <= 0 || got > 5000 || relayed <= 0 || relayed >= got {
		t.Errorf("greeter.budget_ms: relay %d, backend %d; want 0 < backend < relay <= 5000", got, relayed)
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

func spanAttr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines written, decoded.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(s.b.Bytes()))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("log is not JSON lines: %v\n%s", err, s.b.String())
		}
		out = append(out, m)
	}
}

// finished returns the "finished call" lines of logs.
func finished(t *testing.T, logs *syncBuffer) []map[string]any {
	var out []map[string]any
	for _, l := range logs.lines(t) {
		if l["msg"] == "finished call" {
			out = append(out, l)
		}
	}
	return out
}

// TestLogLinePerCall checks the one structured line each side logs per
// call: method, code, duration, peer, request id, budget and its source.
func TestLogLinePerCall(t *testing.T) {
	ctx := testContext(t)
	var serverLog, clientLog syncBuffer
	srv := newServer(t, greeter.WithLogger(slog.New(slog.NewJSONHandler(&serverLog, nil))), greeter.WithRequestID(),
		greeter.WithMethodDeadlines("SayHelloAgain", greeter.DeadlinePolicy{Default: 2 * time.Second}))
	debug := slog.New(slog.NewJSONHandler(&clientLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newClient(t, srv, greeter.WithLogger(debug))
	noDefault := newClient(t, srv, greeter.WithDefaultTimeout(0))

	cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, greeter.RequestIDHeader, "req-42"), 3*time.Second)
	defer cancel()
	if _, err := c.SayHello(cctx, "you"); err != nil {
		t.Fatal(err)
	}
	if _, err := noDefault.SayHelloAgain(bareContext(t), "you"); err != nil {
		t.Fatal(err)
	}
	stream, err := c.SayHelloStreamReply(cctx, "you")
	if err != nil {
		t.Fatal(err)
	}
	if got := recvAll(t, stream); len(got) != greeter.DefaultStreamReplies {
		t.Fatalf("stream replies = %v", got)
	}
	srv.Close() // every line is written

	lines := finished(t, &serverLog)
	if len(lines) != 3 {
		t.Fatalf("server logged %d finished calls; want 3:\n%v", len(lines), lines)
	}
	for i, want := range []struct{ method, source string }{{"SayHello", "client"}, {"SayHelloAgain", "server_default"}, {"SayHelloStreamReply", "client"}} {
		l := lines[i]
		budget, _ := l["greeter.budget_ms"].(float64)
		if l["grpc.method"] != want.method || l["grpc.code"] != "OK" || l["level"] != "INFO" || l["greeter.budget.source"] != want.source ||
			budget <= 1000 || budget > 3000 || l["grpc.time_ms"] == nil || !strings.HasPrefix(fmt.Sprint(l["peer.address"]), "bufconn") && l["peer.address"] == nil {
			t.Errorf("server line %d = %v; want method %s, code OK at INFO, budget source %s, budget_ms in (1000, 3000], a duration and a peer", i, l, want.method, want.source)
		}
		if id, _ := l["greeter.request_id"].(string); id == "" || (i != 1 && id != "req-42") {
			t.Errorf("server line %d request id = %q; want the caller's req-42, or a made-up one", i, id)
		}
	}
	lines = finished(t, &clientLog)
	if len(lines) != 2 {
		t.Fatalf("client logged %d finished calls; want 2:\n%v", len(lines), lines)
	}
	for i, method := range []string{"SayHello", "SayHelloStreamReply"} {
		if l := lines[i]; l["grpc.method"] != method || l["grpc.code"] != "OK" || l["greeter.budget.source"] != "caller" || l["grpc.time_ms"] == nil {
			t.Errorf("client line %d = %v; want %s, OK, budget source caller, a duration", i, l, method)
		}
	}
}

// TestInterceptorOrder checks greeter's documented interceptor order end
// to end: recovery outermost, then compression, request ids, the log line,
// the importer's own interceptors, and the deadline guard bound to the
// methods innermost.
func TestInterceptorOrder(t *testing.T) {
	ctx := testContext(t)
	logs := newLogRecorder()
	ids := make(chan string, 3)
	importer := greeter.WithUnaryServerInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, _ := greeter.RequestIDFromContext(ctx)
		ids <- id
		switch req.(interface{ GetName() string }).GetName() {
		case "panic":
			panic("boom")
		case "deny":
			return nil, status.Error(codes.PermissionDenied, "denied")
		}
		return h(ctx, req)
	})
	srv := newServer(t, greeter.WithLogger(logs.logger()), greeter.WithCompressor(greeter.Gzip), greeter.WithRequestID(), importer,
		greeter.WithServerDeadlines(greeter.DeadlinePolicy{Default: 2 * time.Second}))
	c := newClient(t, srv, greeter.WithDefaultTimeout(0))

	// Compression before request ids: a compressed reply with the id.
	var hdr metadata.MD
	if _, err := c.SayHello(bareContext(t), "ok", grpc.Header(&hdr)); err != nil || len(hdr.Get(greeter.RequestIDHeader)) != 1 {
		t.Fatalf("SayHello = %v, header %v; want a reply with an x-request-id", err, hdr)
	}
	// The importer's interceptor inside the log line: its code is logged.
	if _, err := c.SayHello(ctx, "deny"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SayHello(deny) = %v; want PermissionDenied", err)
	}
	// Recovery outermost: a panic in the importer's interceptor is
	// Internal, logged with its stack by recovery.
	if _, err := c.SayHello(ctx, "panic"); status.Code(err) != codes.Internal {
		t.Fatalf("SayHello(panic) = %v; want Internal", err)
	}
	srv.Close()

	// Request ids before the importer's interceptor and the log line.
	for i := range 3 {
		if id := <-ids; id == "" {
			t.Errorf("call %d: the importer's interceptor saw no request id", i)
		}
	}
	var lines []slog.Record
	logs.mu.Lock()
	for _, r := range logs.records {
		if r.Message == "finished call" {
			lines = append(lines, r)
		}
	}
	logs.mu.Unlock()
	// The guard inside the log line: the budget it gave is logged.
	if len(lines) != 2 || logAttr(lines[0], "grpc.code") != "OK" || logAttr(lines[0], "greeter.budget.source") != "server_default" ||
		logAttr(lines[0], "greeter.request_id") != hdr.Get(greeter.RequestIDHeader)[0] || logAttr(lines[1], "grpc.code") != "PermissionDenied" {
		t.Errorf("finished call lines = %v; want OK with budget source server_default and the request id, then PermissionDenied (none for the panic, which recovery logs)", lines)
	}
	r := logs.await(ctx, t, "greeter: recovered from panic")
	if stack := logAttr(r, "stack"); !strings.Contains(stack, "goroutine") || !strings.Contains(stack, "TestInterceptorOrder") {
		t.Errorf("recovered panic's stack = %q; want the panicking goroutine's stack", stack)
	}
}

// TestPropagatorChosen checks that WithPropagator replaces W3C trace
// context: with a propagator that carries baggage only, the server's span
// starts a trace of its own.
func TestPropagatorChosen(t *testing.T) {
	ctx := testContext(t)
	exp := tracetest.NewInMemoryExporter()
	srv := newServer(t, greeter.WithTracerProvider(newTracer(t, exp)), greeter.WithPropagator(propagation.Baggage{}))
	c := newClient(t, srv, greeter.WithTracerProvider(newTracer(t, exp)), greeter.WithPropagator(propagation.Baggage{}))
	if _, err := c.SayHello(ctx, "you"); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	var recv tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "Recv.Greeter.SayHello" {
			recv = s
		}
	}
	if recv.Name == "" || recv.Parent.IsValid() {
		t.Fatalf("server span %q with parent %v; want a root span: no traceparent was sent", recv.Name, recv.Parent.SpanID())
	}
}

// TestUnknownMethodsCountedAsOther checks that a server's metrics cannot be
// blown up by callers inventing method names: every method the server does
// not serve is counted under one grpc.method, "other". (grpc-go refuses
// those calls without ending their stats: they are in call.started only.)
func TestUnknownMethodsCountedAsOther(t *testing.T) {
	ctx := testContext(t)
	sm := newMeter(t)
	srv := newServer(t, greeter.WithMeterProvider(sm))
	c := newClient(t, srv)
	for _, method := range []string{"/Greeter/Nope", "/x.y/Z", "/made.up.Service/Method1"} {
		var reply greeterpb.HelloReply
		if err := c.Conn().Invoke(ctx, method, &greeterpb.HelloRequest{Name: "you"}, &reply); status.Code(err) != codes.Unimplemented {
			t.Fatalf("%s = %v; want Unimplemented", method, err)
		}
	}
	if _, err := c.SayHello(ctx, "you"); err != nil {
		t.Fatal(err)
	}
	srv.Close() // a server records a call once its status is sent
	assertCounts(t, "grpc.server.call.started", sm.counts(t, "grpc.server.call.started", "grpc.method"), map[string]int64{
		"other":            3,
		"Greeter/SayHello": 1,
	})
	assertCounts(t, "grpc.server.call.duration", sm.counts(t, "grpc.server.call.duration", "grpc.method", "grpc.status"), map[string]int64{
		"Greeter/SayHello OK": 1,
	})
}

// TestClientLogLine checks a client's line of a unary call: the peer that
// answered and the request id, the caller's own or the server's echo; the
// caller's own grpc.Header and grpc.Peer are still filled in, hedged or not.
func TestClientLogLine(t *testing.T) {
	ctx := testContext(t)
	_, addr := startTCPGreeter(t, greeter.WithRequestID())
	for _, hedged := range []bool{false, true} {
		t.Run(fmt.Sprint("hedged=", hedged), func(t *testing.T) {
			var logs syncBuffer
			opts := []greeter.ClientOption{greeter.WithInsecure(),
				greeter.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}
			if hedged {
				opts = append(opts, greeter.WithHedging(greeter.HedgingPolicy{MaxAttempts: 2, HedgingDelay: time.Second}))
			}
			c, err := greeter.NewClient(addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.SayHello(metadata.AppendToOutgoingContext(ctx, greeter.RequestIDHeader, "req-42"), "you"); err != nil {
				t.Fatal(err)
			}
			var hdr metadata.MD
			var p peer.Peer
			if _, err := c.SayHello(ctx, "you", grpc.Header(&hdr), grpc.Peer(&p)); err != nil {
				t.Fatal(err)
			}
			if p.Addr == nil || p.Addr.String() != addr || len(hdr.Get(greeter.RequestIDHeader)) != 1 {
				t.Fatalf("the caller's grpc.Peer = %v, grpc.Header = %v; want %s and a request id", p.Addr, hdr, addr)
			}
			lines := finished(t, &logs)
			if len(lines) != 2 {
				t.Fatalf("client logged %d finished calls; want 2:\n%v", len(lines), lines)
			}
			for i, id := range []string{"req-42", hdr.Get(greeter.RequestIDHeader)[0]} {
				if l := lines[i]; l["peer.address"] != addr || l["greeter.request_id"] != id || l["grpc.code"] != "OK" {
					t.Errorf("client line %d = %v; want peer.address %s, greeter.request_id %s, OK", i, l, addr, id)
				}
			}
		})
	}
}
