package greeter_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"

	"github.com/grpc-greeter/greeter"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/metadata"
)

// Record grpc-go's standard metrics of a server's calls, by method and
// status. Any exporter reads them: greeter serve --metrics-addr serves them
// for Prometheus.
func ExampleWithMeterProvider() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	addr, stop := serve(greeter.WithMeterProvider(mp))
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"you", "me", ""} {
		_, _ = c.SayHello(context.Background(), name) // "" is InvalidArgument
	}
	stop() // a server records a call once its status is sent

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "grpc.server.call.duration" {
				continue
			}
			for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				method, _ := p.Attributes.Value("grpc.method")
				code, _ := p.Attributes.Value("grpc.status")
				fmt.Println(m.Name, method.AsString(), code.AsString(), p.Count)
			}
		}
	}
	// Unordered output:
	// grpc.server.call.duration Greeter/SayHello OK 2
	// grpc.server.call.duration Greeter/SayHello INVALID_ARGUMENT 1
}

// Trace a call through a relay: one trace, each span the child of the one
// before, each with the call's budget and where it came from.
func ExampleWithTracerProvider() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)) // in production: WithBatcher(an OTLP exporter)
	defer tp.Shutdown(context.Background())

	backend, stopBackend := serve(greeter.WithTracerProvider(tp))
	up, err := greeter.NewClient(backend, greeter.WithInsecure(), greeter.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	defer up.Close()
	relay, stopRelay := serve(greeter.WithTracerProvider(tp), greeter.WithUpstream(up))
	c, err := greeter.NewClient(relay, greeter.WithInsecure(), greeter.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SayHello(context.Background(), "you"); err != nil {
		log.Fatal(err)
	}
	stopRelay() // a server's span ends once its status is sent
	stopBackend()

	spans := exp.GetSpans()
	printTree(spans, "", 0)
	// Output:
	// Sent.Greeter.SayHello greeter.budget.source=client_default
	//   Attempt.Greeter.SayHello
	//     Recv.Greeter.SayHello greeter.budget.source=client
	//       Sent.Greeter.SayHello greeter.budget.source=caller
	//         Attempt.Greeter.SayHello
	//           Recv.Greeter.SayHello greeter.budget.source=client
}

// Log one structured line per call on a server: its method, code, budget
// and where the budget came from, its request id. The peer, times and
// durations are left out here, as they change from run to run.
func ExampleWithLogger() {
	vary := map[string]bool{slog.TimeKey: true, "peer.address": true, "grpc.start_time": true,
		"grpc.request.deadline": true, "grpc.time_ms": true, "greeter.budget_ms": true}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if vary[a.Key] {
				return slog.Attr{}
			}
			return a
		},
	}))
	addr, stop := serve(greeter.WithLogger(logger), greeter.WithRequestID())
	c, err := greeter.NewClient(addr, greeter.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), greeter.RequestIDHeader, "req-1")
	if _, err := c.SayHello(ctx, "you"); err != nil {
		log.Fatal(err)
	}
	stop() // every line is written
	// Output:
	// level=INFO msg="finished call" greeter.budget.source=client greeter.request_id=req-1 protocol=grpc grpc.component=server grpc.service=Greeter grpc.method=SayHello grpc.method_type=unary grpc.code=OK
}

// printTree prints the spans whose parent is parent ("" for the root), and
// their children below them, indented.
func printTree(spans tracetest.SpanStubs, parent string, depth int) {
	for _, s := range spans {
		p := ""
		if s.Parent.IsValid() {
			p = s.Parent.SpanID().String()
		}
		if p != parent {
			continue
		}
		line := strings.Repeat("  ", depth) + s.Name
		for _, a := range s.Attributes {
			if a.Key == attribute.Key("greeter.budget.source") {
				line += " greeter.budget.source=" + a.Value.AsString()
			}
		}
		fmt.Println(line)
		printTree(spans, s.SpanContext.SpanID().String(), depth+1)
	}
}
