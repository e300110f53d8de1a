package main

// The observability flags of greeter serve: the log's format and level,
// Prometheus metrics on --metrics-addr, traces exported over OTLP, and the
// admin services (channelz, CSDS) on --admin-addr. docs/observability.md is
// the guide.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/grpc-greeter/greeter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/admin"
	"google.golang.org/grpc/reflection"
)

// observeFlags are the observability flags of greeter serve.
type observeFlags struct {
	logFormat, logLevel, metricsAddr, adminAddr, otlpEndpoint *string
}

func addObserveFlags(fs *flag.FlagSet) *observeFlags {
	return &observeFlags{
		logFormat:    fs.String("log-format", "text", "log lines as `text` (key=value) or json"),
		logLevel:     fs.String("log-level", "info", "least `level` logged: debug, info, warn or error; info logs a line per call, warn only the calls that ended DeadlineExceeded, Unavailable, Internal and the like, and the server's own warnings"),
		metricsAddr:  fs.String("metrics-addr", "", "serve Prometheus metrics (grpc-go's OpenTelemetry instruments and greeter_*) at http://`ADDR`/metrics (port 0 picks one)"),
		adminAddr:    fs.String("admin-addr", "", "serve the gRPC admin services (channelz, CSDS) and reflection on a separate `ADDR` (port 0 picks one)"),
		otlpEndpoint: fs.String("otlp-endpoint", "", "export traces over OTLP/gRPC to this `URL` (http://host:4317 for plaintext); the OTEL_EXPORTER_OTLP_* variables work too"),
	}
}

// check refuses flag values the exporters would take and fail on later.
func (f *observeFlags) check() error {
	if e := *f.otlpEndpoint; e != "" {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--otlp-endpoint %q: want a URL such as http://localhost:4317 (http for plaintext, https for TLS)", e)
		}
	}
	return nil
}

// logger is the server's logger, as --log-format and --log-level ask.
func (f *observeFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", *f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", *f.logFormat)
}

// otlpFromEnv reports whether the standard variables name where traces go.
func otlpFromEnv() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// observability is what the flags started: the options that turn the
// signals on, and what serves and exports them.
type observability struct {
	server []greeter.ServerOption
	client []greeter.ClientOption // for --upstream's client: the same signals
	stops  []func(context.Context) error
	// where says where metrics and admin services listen, a line each,
	// for serve to print after its own.
	where []string
}

// start turns on what the flags ask for. It must run before the Greeter's
// server is built: channelz counts only the servers and channels made after
// it is turned on.
func (f *observeFlags) start(ctx context.Context, logger *slog.Logger) (_ *observability, err error) {
	// o is not the result: a failed start returns nil, after stopping
	// what it had started.
	o := &observability{server: []greeter.ServerOption{greeter.WithLogger(logger)}, client: []greeter.ClientOption{greeter.WithLogger(logger)}}
	defer func() {
		if err != nil {
			o.stop(context.Background())
		}
	}()
	var res *resource.Resource
	if *f.metricsAddr != "" || *f.otlpEndpoint != "" || otlpFromEnv() {
		// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the
		// default name.
		if res, err = resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "greeter")), resource.WithFromEnv(), resource.WithTelemetrySDK()); err != nil {
			return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
		}
		// The SDK's errors (a collector that cannot be reached, a metric
		// it cannot record) go to the server's log, in its format, not to
		// the standard logger. OpenTelemetry has only this process-wide
		// handler; the CLI owns the process.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("OpenTelemetry", "error", err)
		}))
	}
	if *f.otlpEndpoint != "" || otlpFromEnv() {
		var eopts []otlptracegrpc.Option
		if *f.otlpEndpoint != "" {
			eopts = append(eopts, otlptracegrpc.WithEndpointURL(*f.otlpEndpoint))
		}
		// No network I/O here: the exporter connects when it first
		// exports.
		exp, err := otlptracegrpc.New(ctx, eopts...)
		if err != nil {
			return nil, fmt.Errorf("--otlp-endpoint: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		o.stops = append(o.stops, tp.Shutdown)
		o.server = append(o.server, greeter.WithTracerProvider(tp))
		o.client = append(o.client, greeter.WithTracerProvider(tp))
	}
	if *f.metricsAddr != "" {
		mp, handler, err := prometheusMetrics(res)
		if err != nil {
			return nil, err
		}
		o.stops = append(o.stops, mp.Shutdown)
		o.server = append(o.server, greeter.WithMeterProvider(mp))
		o.client = append(o.client, greeter.WithMeterProvider(mp))
		addr, stop, err := serveHTTP(*f.metricsAddr, handler)
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
		o.stops = append(o.stops, stop)
		o.where = append(o.where, fmt.Sprintf("greeter: metrics on http://%s/metrics", addr))
	}
	if *f.adminAddr != "" {
		addr, stop, err := serveAdmin(*f.adminAddr)
		if err != nil {
			return nil, fmt.Errorf("--admin-addr: %w", err)
		}
		o.stops = append(o.stops, stop)
		o.where = append(o.where, fmt.Sprintf("greeter: admin services on %s", addr))
	}
	return o, nil
}

// stop stops what start started, the last first, within ctx.
func (o *observability) stop(ctx context.Context) error {
	var errs []error
	for i := len(o.stops) - 1; i >= 0; i-- {
		errs = append(errs, o.stops[i](ctx))
	}
	return errors.Join(errs...)
}

// prometheusMetrics is a MeterProvider whose metrics a Prometheus server
// scrapes from the handler: on a registry of its own, not the process's
// global one.
func prometheusMetrics(res *resource.Resource) (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	// The process's own, as every Prometheus target has them: memory,
	// goroutines, CPU time, open files.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr: Prometheus exporter: %w", err)
	}
	// No exemplars: the text format Prometheus scrapes here has no room
	// for them, and offering each measurement to a reservoir costs every
	// traced call.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// serveHTTP serves h at /metrics on addr until the returned stop.
func serveHTTP(addr string, h http.Handler) (string, func(context.Context) error, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	return lis.Addr().String(), func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if err != nil {
			// ctx ended with a scrape still running: close its
			// connection too rather than leave it behind.
			err = errors.Join(err, srv.Close())
		}
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}, nil
}

// serveAdmin serves grpc-go's admin services (channelz, and CSDS when the
// binary links xDS) with reflection, for grpcurl and grpcdebug, on a
// grpc.Server of their own at addr: they answer about every server and
// channel in the process, which is not for the Greeter's callers.
// admin.Register registers channelz itself (and turns it on): nothing
// else must.
func serveAdmin(addr string) (string, func(context.Context) error, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer()
	cleanup, err := admin.Register(s)
	if err != nil {
		lis.Close()
		return "", nil, fmt.Errorf("admin services: %w", err)
	}
	reflection.Register(s)
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	return lis.Addr().String(), func(ctx context.Context) error {
		stopped := make(chan struct{})
		go func() { s.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.Stop()
			<-stopped
		}
		cleanup()
		return <-served
	}, nil
}
