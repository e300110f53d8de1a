package greeter

// The signals a Server and a Client give (docs/observability.md): metrics
// and traces through grpc-go's stats/opentelemetry, greeter's own deadline
// instruments, and the per-call log line.

import (
	"errors"

	"github.com/grpc-greeter/greeter/internal/observe"
	"github.com/grpc-greeter/greeter/internal/requestid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	otelexp "google.golang.org/grpc/experimental/opentelemetry"
	"google.golang.org/grpc/stats/opentelemetry"
)

// telemetry is what WithMeterProvider, WithTracerProvider and
// WithPropagator set on either side.
type telemetry struct {
	mp                    metric.MeterProvider
	tp                    trace.TracerProvider
	prop                  propagation.TextMapPropagator
	mpNil, tpNil, propNil bool
	tracing               bool // tp given and not nil
}

func (t *telemetry) setMeterProvider(mp metric.MeterProvider) {
	t.mp, t.mpNil = mp, mp == nil
}

func (t *telemetry) setTracerProvider(tp trace.TracerProvider) {
	t.tp, t.tpNil = tp, tp == nil
	t.tracing = tp != nil
}

func (t *telemetry) setPropagator(p propagation.TextMapPropagator) {
	t.prop, t.propNil = p, p == nil
}

func (t *telemetry) validate() error {
	var errs []error
	if t.mpNil {
		errs = append(errs, errors.New("greeter: WithMeterProvider: nil MeterProvider"))
	}
	if t.tpNil {
		errs = append(errs, errors.New("greeter: WithTracerProvider: nil TracerProvider"))
	}
	if t.propNil {
		errs = append(errs, errors.New("greeter: WithPropagator: nil TextMapPropagator"))
	}
	return errors.Join(errs...)
}

// options are grpc-go's OpenTelemetry instrumentation for what t turns on.
//
// Tracing is grpc-go's own (stats/opentelemetry's TraceOptions) rather than
// otelgrpc's: the same stats handlers that record the metrics, configured
// in one Options value, with the span layout of gRFC A72 that other gRPC
// languages share (a call span, a span per attempt, so that retries and
// hedges show), and no second instrumentation module. Its TraceOptions
// type lives in grpc's experimental/opentelemetry package: should grpc-go
// move it, only this function changes.
func (t *telemetry) options() (opentelemetry.Options, bool) {
	if t.mp == nil && t.tp == nil {
		return opentelemetry.Options{}, false
	}
	o := opentelemetry.Options{MetricsOptions: opentelemetry.MetricsOptions{MeterProvider: t.mp}}
	if t.tp != nil {
		prop := t.prop
		if prop == nil {
			prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
		o.TraceOptions = otelexp.TraceOptions{TracerProvider: t.tp, TextMapPropagator: prop}
	}
	return o, true
}

func (t *telemetry) serverMetrics() (*observe.ServerMetrics, error) {
	if t.mp == nil {
		return nil, nil
	}
	m, err := observe.NewServerMetrics(t.mp)
	if err != nil {
		return nil, errors.New("greeter: WithMeterProvider: " + err.Error())
	}
	return m, nil
}

func (t *telemetry) clientMetrics() (*observe.ClientMetrics, error) {
	if t.mp == nil {
		return nil, nil
	}
	m, err := observe.NewClientMetrics(t.mp)
	if err != nil {
		return nil, errors.New("greeter: WithMeterProvider: " + err.Error())
	}
	return m, nil
}

// serverTelemetry is grpc-go's OpenTelemetry server option, if any. It
// goes before greeter's interceptor chain: its stats handlers see every
// call, and its own interceptor is outermost.
func (c *serverConfig) serverTelemetry() []grpc.ServerOption {
	if o, ok := c.telemetry.options(); ok {
		return []grpc.ServerOption{opentelemetry.ServerOption(o)}
	}
	return nil
}

// observeConfig is what the server's observing interceptor does: the
// access log line when WithLogger was given, the budget on the span when
// tracing.
func (c *serverConfig) observeConfig() observe.ServerConfig {
	oc := observe.ServerConfig{Trace: c.telemetry.tracing, RequestID: requestid.FromContext}
	if c.accessLog {
		oc.Logger = c.logger
	}
	// The caller's identity is added by the server's logger itself
	// (withIdentity, security.go), to this line as to every line about
	// a call.
	return oc
}

// clientTelemetry are grpc-go's OpenTelemetry dial options, if any. They
// go before greeter's interceptors, so that the call's span exists when
// greeter writes the budget onto it. With metrics on, every call's method
// is recorded as grpc.method: the client calls only the Greeter's four and
// what the importer calls on Conn.
func (c *clientConfig) clientTelemetry() []grpc.DialOption {
	o, ok := c.telemetry.options()
	if !ok {
		return nil
	}
	opts := []grpc.DialOption{opentelemetry.DialOption(o)}
	if c.telemetry.mp != nil {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.StaticMethod()))
	}
	return opts
}

// observeConfig is what the client's observing interceptors do.
func (c *clientConfig) observeConfig() observe.ClientConfig {
	return observe.ClientConfig{Logger: c.logger, Trace: c.telemetry.tracing}
}

// label is s as greeter's instruments, logs and spans name it.
func (s DeadlineSource) label() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceCaller:
		return "caller"
	case SourceClientDefault:
		return "client_default"
	case SourceServiceConfig:
		return "service_config"
	case SourcePerAttempt:
		return "per_attempt"
	case SourceServerCap:
		return "server_cap"
	case SourceServerDefault:
		return "server_default"
	case SourceStreamIdle:
		return "stream_idle"
	}
	return "unknown"
}

// label is p as greeter's instruments name it.
func (p Phase) label() string {
	switch p {
	case PhaseBeforeSend:
		return "before_send"
	case PhaseConnecting:
		return "connecting"
	case PhaseServer:
		return "server"
	case PhaseBackoff:
		return "backoff"
	}
	return "unknown"
}

// statusLabel is code as grpc-go's instruments write grpc.status.
func statusLabel(code codes.Code) string {
	if code == codes.Canceled {
		return "CANCELLED"
	}
	return "DEADLINE_EXCEEDED"
}
